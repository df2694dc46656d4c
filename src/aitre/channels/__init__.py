"""Upstream channels: their in-memory form, their storage, and the choice among them."""
