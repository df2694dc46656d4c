"""User and key storage. Shared by the CLI, the admin API and the first-start bootstrap."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.keys import generate_key, hash_key, key_hint
from aitre.store.models import LedgerEntry, Token, User, now_ms

ROLES = ("admin", "user")
GRANT_KINDS = ("topup", "redeem", "adjust")


class AccountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the only moment its plain text exists."""

    token: Token
    key: str


async def create_user(
    session: AsyncSession, username: str, role: str = "user", group: str = "default", quota: int = 0
) -> User:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, role=role, group_name=group, enabled=True, quota=0)
    session.add(user)
    await session.flush()
    if quota:
        await grant(session, user, quota, "topup", "initial quota")
    return user


async def grant(
    session: AsyncSession, user: User, amount: int, kind: str = "topup", note: str = ""
) -> LedgerEntry:
    """Add (or, negative, remove) quota: a ledger row and the balance, in the caller's transaction.

    Running gateways see it when the catalog version moves (their cached balances are reloaded).
    """
    if kind not in GRANT_KINDS:
        raise AccountError(f"kind must be one of {', '.join(GRANT_KINDS)}")
    await session.refresh(user, ["quota"])
    if user.quota + amount < 0:
        raise AccountError(
            f"that would leave {user.username} with a negative balance ({user.quota} + {amount})"
        )
    entry = LedgerEntry(
        user_id=user.id,
        token_id=None,
        hold_id=f"{kind}_{secrets.token_hex(12)}",
        kind=kind,
        amount=amount,
        note=note,
    )
    session.add(entry)
    await session.execute(update(User).where(User.id == user.id).values(quota=User.quota + amount))
    await session.flush()
    return entry


async def find_user(session: AsyncSession, ref: str) -> User:
    stmt = (
        select(User).where(User.id == int(ref)) if ref.isdigit() else select(User).where(User.username == ref)
    )
    user = await session.scalar(stmt)
    if user is None:
        raise AccountError(f"no user {ref!r}")
    return user


async def create_token(session: AsyncSession, user: User, name: str = "") -> IssuedKey:
    key = generate_key()
    token = Token(user_id=user.id, name=name, key_hash=hash_key(key), key_hint=key_hint(key), enabled=True)
    session.add(token)
    await session.flush()
    return IssuedKey(token=token, key=key)


async def find_token(session: AsyncSession, ref: str) -> Token:
    """A token by id, or by its plain key."""
    stmt = (
        select(Token).where(Token.id == int(ref))
        if ref.isdigit()
        else select(Token).where(Token.key_hash == hash_key(ref))
    )
    token = await session.scalar(stmt)
    if token is None:
        raise AccountError(f"no token {ref!r}")
    return token


async def revoke_token(session: AsyncSession, ref: str) -> Token:
    token = await find_token(session, ref)
    token.enabled = False
    token.revoked_at = now_ms()
    return token


async def list_tokens(session: AsyncSession, user: User | None = None) -> list[tuple[Token, User]]:
    stmt = select(Token, User).join(User, User.id == Token.user_id).order_by(Token.id)
    if user is not None:
        stmt = stmt.where(Token.user_id == user.id)
    return [(t, u) for t, u in (await session.execute(stmt)).all()]
