"""The user API (`/api/user/...`): any valid key, acting for the key's own user.

`routes.router` gathers the routers.
"""
