"""Users, API keys (tokens) and their limits."""
