"""Users' web console passwords: argon2id hashes (argon2-cffi's defaults), set by the user (with
a key without limits, or signed in with the old password) or by an admin.

Hashing costs about 50 ms of CPU and 64 MiB: it runs in a worker thread (never on the event
loop), at most two at a time per process, so a burst of sign-ins cannot take all the memory.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.repo import AccountError
from aitre.store.models import ConsoleSession, User

MIN_LENGTH = 8
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps a hostile 1 MB "password" cheap to refuse


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _slots() -> threading.BoundedSemaphore:
    # Taken inside the worker thread: it bounds the hashes under way whatever event loop asked.
    return threading.BoundedSemaphore(2)


def _bounded_hash(password: str) -> str:
    with _slots():
        return _hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password anyone has")


def check_strength(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise AccountError(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise AccountError(f"a password has at most {MAX_LENGTH} characters")
    if not password.strip():
        raise AccountError("a password cannot be only spaces")
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_bounded_hash, check_strength(password))


async def verify(stored: str, password: str) -> bool:
    """Whether `password` matches the hash `stored`. With nothing stored (no such user, or no
    password set) a dummy hash is checked all the same: the answer takes as long either way, so
    its timing does not tell which user names exist."""
    if len(password) > MAX_LENGTH:
        return False
    target = stored or await asyncio.to_thread(_dummy_hash)

    def check() -> bool:
        with _slots():
            try:
                return _hasher().verify(target, password)
            except (VerificationError, InvalidHashError):
                return False

    return await asyncio.to_thread(check) and bool(stored)


async def set_password(
    session: AsyncSession, user: User, password: str | None, keep_session: str | None = None
) -> None:
    """Set (or, with None, remove) the user's password, in the caller's transaction. Their console
    sessions end, all but `keep_session` (the one that made the change): whoever knew the old
    password is signed out."""
    user.password_hash = "" if password is None else await hash_password(password)
    stmt = delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
    if keep_session is not None:
        stmt = stmt.where(ConsoleSession.id != keep_session)
    await session.execute(stmt)
    await session.flush()
