"""The admin API (`/api/admin/...`): users, groups, keys, channels, prices, redeem codes, usage.

`routes.router` gathers the routers; every route needs an admin's key.
"""
