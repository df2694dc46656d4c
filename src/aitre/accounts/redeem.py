"""Redeem codes: single-use codes that add quota. Stored hashed, like keys; the plain code exists
only in the answer to the request that created it."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.keys import hash_key
from aitre.accounts.repo import MAX_TIME_MS, MAX_UNITS, AccountError, grant
from aitre.errors import ConflictError, NotFoundError
from aitre.store.models import RedeemCode, User, now_ms

CODE_PREFIX = "rc-"
MAX_BATCH = 1000
CodeStatus = Literal["unused", "used", "expired"]
_ALPHABET = string.ascii_letters + string.digits


class RedeemError(AccountError):
    """A code that cannot be redeemed; `code` says why (unknown, used, expired)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class IssuedCode:
    row: RedeemCode
    code: str


def generate_code() -> str:
    return CODE_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def code_hint(code: str) -> str:
    return f"{code[:6]}…{code[-4:]}"


async def create_codes(
    session: AsyncSession, *, count: int, quota: int, name: str = "", expires_at: int | None = None
) -> list[IssuedCode]:
    if not 1 <= count <= MAX_BATCH:
        raise AccountError(f"count must be between 1 and {MAX_BATCH}")
    if not 0 < quota <= MAX_UNITS:
        raise AccountError(f"a code must add a positive quota of at most {MAX_UNITS} units")
    if expires_at is not None and expires_at <= now_ms():
        raise AccountError("expires_at is in the past")
    if expires_at is not None and expires_at > MAX_TIME_MS:
        raise AccountError("expires_at is after the year 9999")
    if len(name) > 128:
        raise AccountError("a name is at most 128 characters")
    issued = []
    for _ in range(count):
        code = generate_code()
        row = RedeemCode(
            code_hash=hash_key(code), code_hint=code_hint(code), name=name, quota=quota, expires_at=expires_at
        )
        session.add(row)
        issued.append(IssuedCode(row, code))
    await session.flush()
    return issued


def _status_filter(status: CodeStatus, now: int) -> ColumnElement[bool]:
    live = or_(RedeemCode.expires_at.is_(None), RedeemCode.expires_at > now)
    if status == "used":
        return RedeemCode.used_by.is_not(None)
    if status == "unused":
        return and_(RedeemCode.used_by.is_(None), live)
    return and_(RedeemCode.used_by.is_(None), RedeemCode.expires_at <= now)


async def list_codes(
    session: AsyncSession, *, status: CodeStatus | None = None, offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[RedeemCode, str | None]], int]:
    """Codes, newest first, with the name of the user who redeemed each, and their total."""
    conditions = [] if status is None else [_status_filter(status, now_ms())]
    total = await session.scalar(select(func.count()).select_from(RedeemCode).where(*conditions)) or 0
    stmt = (
        select(RedeemCode, User.username)
        .outerjoin(User, User.id == RedeemCode.used_by)
        .where(*conditions)
        .order_by(RedeemCode.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(c, u) for c, u in (await session.execute(stmt)).all()], int(total)


async def delete_code(session: AsyncSession, code_id: int) -> None:
    """Delete an unused code (a used one stays: it explains a ledger entry)."""
    row = await session.get(RedeemCode, code_id)
    if row is None:
        raise NotFoundError(f"no redeem code with id {code_id}")
    if row.used_by is not None:
        raise ConflictError(f"redeem code {code_id} was already used; it is kept for the record")
    await session.delete(row)
    await session.flush()


async def redeem(session: AsyncSession, user: User, code: str) -> RedeemCode:
    """Use a code for `user`: it is marked used and its quota granted, in the caller's transaction.

    The mark is a conditional update, so two concurrent attempts cannot both succeed.
    """
    row = await session.scalar(select(RedeemCode).where(RedeemCode.code_hash == hash_key(code.strip())))
    if row is None:
        raise RedeemError("This redeem code does not exist.", "redeem_code_invalid")
    now = now_ms()
    if row.used_by is not None:
        raise RedeemError("This redeem code has already been used.", "redeem_code_used")
    if row.expires_at is not None and row.expires_at <= now:
        raise RedeemError("This redeem code has expired.", "redeem_code_expired")
    result = await session.execute(
        update(RedeemCode)
        .where(RedeemCode.id == row.id, RedeemCode.used_by.is_(None))
        .values(used_by=user.id, used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise RedeemError("This redeem code has already been used.", "redeem_code_used")
    await grant(session, user, row.quota, "redeem", f"redeem code {row.id} ({row.code_hint})")
    await session.refresh(row)
    return row
