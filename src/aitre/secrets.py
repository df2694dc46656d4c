"""Encryption of upstream secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode() if plain else ""

    def decrypt(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "cannot decrypt a channel secret: AITRE_SECRET_KEY changed, or this gateway shares a "
                "database with others but not their AITRE_SECRET_KEY (each data folder makes its own "
                "`secret.key` unless the setting is given: give every instance the same one)"
            ) from exc


def load_or_create_key(configured: str, data_dir: Path) -> str:
    """The configured key, else the one in `<data_dir>/secret.key`, created (0600) on first use."""
    if configured:
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
