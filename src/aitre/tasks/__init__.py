"""The durable task engine: long-running upstream jobs (MJ, videos) kept in the database.

`protocol.py` is the contract (types, the per-upstream `TaskProtocol`, the engine's
`TaskService`); `registry.py` says which protocol serves which channel type. See docs/tasks.md.
"""
