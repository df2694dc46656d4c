"""API key format and hashing. Keys are 48 random base62 characters after `sk-`; only their
SHA-256 is stored (the entropy makes a slow hash unnecessary, and lookups stay O(1))."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "sk-"


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(48))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    return f"{key[:7]}…{key[-4:]}"


def parse_bearer(header: str | None) -> str | None:
    """The key from an `Authorization: Bearer <key>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None
