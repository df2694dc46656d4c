"""Guards for what the gateway does on a client's behalf."""
