"""notifyHook signatures: each user has a hook secret (kept encrypted, shown and rotated in the user
API), and every call carries `X-Aitre-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256 of `f"{t}.{body}"` under that secret. A receiver recomputes it over the raw body,
compares in constant time, and refuses old `t` values (replays)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.secrets import SecretBox
from aitre.store.models import User

HEADER = "X-Aitre-Signature"
PREFIX = "whsec_"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (tests use it too)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in fields or "v1" not in fields or not fields["t"].isdigit():
        return False
    expected = sign(secret, int(fields["t"]), body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, fields["v1"])


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def hook_secret(session: AsyncSession, box: SecretBox, user_id: int) -> str | None:
    """The user's hook secret, made on first use (the first writer wins: two processes making one
    at once end up with the same). None when there is no such user."""
    stored = await session.scalar(select(User.hook_secret_enc).where(User.id == user_id))
    if stored is None:
        return None
    if stored:
        return box.decrypt(stored)
    await session.execute(
        update(User)
        .where(User.id == user_id, User.hook_secret_enc == "")
        .values(hook_secret_enc=box.encrypt(new_secret()))
    )
    stored = await session.scalar(select(User.hook_secret_enc).where(User.id == user_id))
    return box.decrypt(stored) if stored else None


async def rotate(session: AsyncSession, box: SecretBox, user_id: int) -> str:
    """A new secret for the user; calls signed from now on use it."""
    secret = new_secret()
    await session.execute(update(User).where(User.id == user_id).values(hook_secret_enc=box.encrypt(secret)))
    return secret
