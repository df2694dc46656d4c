"""HTTP routes only: parse, call a service, shape the response."""
