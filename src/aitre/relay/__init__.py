"""The synchronous relay: channel choice, the upstream call, streaming pass-through, usage capture."""
