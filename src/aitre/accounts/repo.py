"""User and key storage. Shared by the CLI, the admin API and the first-start bootstrap.

Domain errors are `AccountError`s (ValueErrors) carrying the HTTP status they mean, so the CLI
prints them and the HTTP API answers them without a mapping table of its own.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from ipaddress import ip_network
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.keys import generate_key, hash_key, key_hint
from aitre.errors import ConflictError, DomainError, NotFoundError
from aitre.store.models import Group, LedgerEntry, Token, User, now_ms

ROLES = ("admin", "user")
GRANT_KINDS = ("topup", "redeem", "adjust")
DEFAULT_GROUP = "default"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
# The largest amount of quota units anywhere (a balance, a top-up, a key's cap, a code): exact as
# a double, so JSON readers in JavaScript see it right, and far from 64-bit overflow (SQLite
# turns an overflowing sum into a float). 2**53 - 1 units is about $18 billion at 500,000/USD.
MAX_UNITS = 2**53 - 1
# Limits stored in 32-bit columns (rpm, tpm) and record ids.
MAX_INT32 = 2**31 - 1
# Times are kept in ms since the epoch; the last ms of the year 9999.
MAX_TIME_MS = 253_402_300_799_999


class AccountError(DomainError):
    """A request about users, keys, groups or codes that cannot be done as asked."""


class AmountTooLarge(AccountError):
    code = "amount_too_large"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the only moment its plain text exists."""

    token: Token
    key: str


# --- amounts -----------------------------------------------------------------------------------
def usd_to_units(usd: Decimal | str | float, units_per_usd: int) -> int:
    """Dollars as whole quota units (rounded to the nearest unit)."""
    try:
        value = Decimal(str(usd))
    except InvalidOperation:
        raise AccountError(f"not an amount of dollars: {usd!r}") from None
    if not value.is_finite():
        raise AccountError(f"not an amount of dollars: {usd!r}")
    if abs(value) * units_per_usd > MAX_UNITS:  # before rounding: no giant integer is ever built
        raise AmountTooLarge(f"an amount is at most {MAX_UNITS} units (${MAX_UNITS / units_per_usd:,.0f})")
    return int((value * units_per_usd).to_integral_value(ROUND_HALF_EVEN))


def parse_amount(text: str, units_per_usd: int) -> int:
    """Quota units (`500000`), or dollars with a `$` prefix or `usd` suffix (`$1`, `2.5usd`)."""
    value = text.strip().lower().replace("_", "")
    if value.startswith(("$", "-$", "+$")) or value.endswith("usd"):
        sign = "-" if value.startswith("-") else ""
        return usd_to_units(sign + value.lstrip("+-").strip("$").removesuffix("usd").strip(), units_per_usd)
    try:
        return int(value)
    except ValueError:
        raise AccountError(f"expected units (e.g. 500000) or dollars (e.g. $1), not {text!r}") from None


def units_to_usd(units: int, units_per_usd: int) -> str:
    return str((Decimal(units) / Decimal(units_per_usd)).quantize(Decimal("0.000001")))


# --- users -------------------------------------------------------------------------------------
def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(f"a {kind} name is 1-64 letters, digits or . _ @ + -, not {name!r}")
    if name.isdigit():
        raise AccountError(f"a {kind} name cannot be only digits (those are read as ids)")
    return name


async def require_group(session: AsyncSession, name: str) -> None:
    """Users may only join groups that exist (a typo would silently price at 1x); `default` always does."""
    if name != DEFAULT_GROUP and await session.get(Group, name) is None:
        raise AccountError(f"no group {name!r}; create it first (aitre group set {name} --multiplier 1)")


async def create_user(
    session: AsyncSession, username: str, role: str = "user", group: str = "default", quota: int = 0
) -> User:
    check_name("user", username)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    await require_group(session, group)
    if quota < 0:
        raise AccountError("a starting quota cannot be negative")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists")
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
    if user.quota + amount > MAX_UNITS:
        raise AmountTooLarge(f"a balance is at most {MAX_UNITS} units; {user.username} has {user.quota}")
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
    await session.refresh(user, ["quota"])
    # Live balances kept outside the database (Redis) apply this once it commits.
    session.info.setdefault("balance_changes", []).append((user.id, amount))
    return entry


async def find_user(session: AsyncSession, ref: str) -> User:
    stmt = (
        select(User).where(User.id == int(ref)) if ref.isdigit() else select(User).where(User.username == ref)
    )
    user = await session.scalar(stmt)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


async def list_users(
    session: AsyncSession,
    *,
    name: str | None = None,
    group: str | None = None,
    role: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[User], int]:
    """Users by id, filtered (`name`: a case-insensitive part of the user name), and their total."""
    conditions = []
    if name:
        conditions.append(func.lower(User.username).contains(name.lower(), autoescape=True))
    if group:
        conditions.append(User.group_name == group)
    if role:
        conditions.append(User.role == role)
    total = await session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    stmt = select(User).where(*conditions).order_by(User.id).offset(offset).limit(limit)
    return list(await session.scalars(stmt)), int(total)


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    role: str | None = None,
    group: str | None = None,
    enabled: bool | None = None,
) -> User:
    """Change a user's role, group or status. The last enabled admin cannot lock everyone out."""
    if role is not None and role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if group is not None:
        await require_group(session, group)
    demoted = role is not None and role != "admin"
    if user.role == "admin" and user.enabled and (demoted or enabled is False):
        others = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.enabled.is_(True), User.id != user.id)
        )
        if not others:
            raise ConflictError(f"{user.username} is the last enabled admin; make another admin first")
    if role is not None:
        user.role = role
    if group is not None:
        user.group_name = group
    if enabled is not None:
        user.enabled = enabled
    await session.flush()
    return user


async def ledger_page(
    session: AsyncSession, user_id: int, offset: int = 0, limit: int = 50
) -> tuple[list[LedgerEntry], int]:
    """A user's ledger entries, newest first, and their total."""
    where = LedgerEntry.user_id == user_id
    total = await session.scalar(select(func.count()).select_from(LedgerEntry).where(where)) or 0
    stmt = select(LedgerEntry).where(where).order_by(LedgerEntry.id.desc()).offset(offset).limit(limit)
    return list(await session.scalars(stmt)), int(total)


# --- keys --------------------------------------------------------------------------------------
KEY_FIELDS = (
    "name",
    "enabled",
    "quota",
    "expires_at",
    "allowed_models",
    "allowed_ips",
    "rpm",
    "tpm",
    "model_mapping",
)


def _models(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise AccountError("allowed_models must be a list of model names (or null for any)")
    models = list(dict.fromkeys(m.strip() for m in value if m.strip()))
    return models or None


def _ips(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AccountError("allowed_ips must be a list of IP addresses or CIDRs (or null for any)")
    out: list[str] = []
    for item in (v.strip() for v in value if v.strip()):
        try:
            out.append(str(ip_network(item, strict=False)))
        except ValueError:
            raise AccountError(f"not an IP address or CIDR: {item!r}") from None
    return list(dict.fromkeys(out)) or None


def _count(name: str, value: Any, maximum: int = MAX_INT32) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise AccountError(f"{name} must be a whole number from 0 to {maximum} (0 = no limit)")
    return value


def _mapping(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise AccountError("model_mapping must map model names to model names")
    return dict(value)


def _expiry(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise AccountError("expires_at must be a time in milliseconds since the epoch (or null)")
    if value <= int(time.time() * 1000):
        raise AccountError("expires_at is in the past")
    if value > MAX_TIME_MS:
        raise AccountError("expires_at is after the year 9999")
    return value


def _apply_key_changes(token: Token, changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - set(KEY_FIELDS)
    if unknown:
        raise AccountError(f"unknown key settings: {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        if field == "name":
            if not isinstance(value, str) or len(value) > 128:
                raise AccountError("a key name is a string of at most 128 characters")
            token.name = value
        elif field == "enabled":
            if value and token.revoked_at is not None:
                raise ConflictError(f"key {token.id} is revoked; create a new one")
            token.enabled = bool(value)
        elif field == "quota":
            token.unlimited = value is None
            token.remain_quota = 0 if value is None else _count("quota", value, MAX_UNITS)
        elif field == "expires_at":
            token.expires_at = _expiry(value)
        elif field == "allowed_models":
            token.allowed_models = _models(value)
        elif field == "allowed_ips":
            token.allowed_ips = _ips(value)
        elif field in ("rpm", "tpm"):
            setattr(token, field, _count(field, value))
        else:
            token.model_mapping = _mapping(value)


def key_limits(token: Token) -> list[str]:
    """The limits set on a key, by name; empty for a key with every right of its user."""
    limits = {
        "quota": not token.unlimited,
        "expires_at": token.expires_at is not None,
        "allowed_models": bool(token.allowed_models),
        "allowed_ips": bool(token.allowed_ips),
        "rpm": bool(token.rpm),
        "tpm": bool(token.tpm),
        "model_mapping": bool(token.model_mapping),
    }
    return [name for name, is_set in limits.items() if is_set]


async def create_token(session: AsyncSession, user: User, name: str = "") -> IssuedKey:
    return await create_key(session, user, {"name": name})


async def create_key(session: AsyncSession, user: User, settings: Mapping[str, Any]) -> IssuedKey:
    """A key with limits (`KEY_FIELDS`: `quota` None = unlimited, `expires_at` in ms, lists or None)."""
    key = generate_key()
    token = Token(
        user_id=user.id,
        name="",
        key_hash=hash_key(key),
        key_hint=key_hint(key),
        enabled=True,
        unlimited=True,
        remain_quota=0,
        used_quota=0,
        rpm=0,
        tpm=0,
        model_mapping={},
    )
    _apply_key_changes(token, settings)
    session.add(token)
    await session.flush()
    return IssuedKey(token=token, key=key)


async def update_key(session: AsyncSession, token: Token, changes: Mapping[str, Any]) -> Token:
    """Change some of a key's settings (`KEY_FIELDS`; the same rules as `create_key`)."""
    _apply_key_changes(token, changes)
    await session.flush()
    if "quota" in changes:
        session.info.setdefault("token_changes", []).append(token.id)
    return token


async def find_token(session: AsyncSession, ref: str) -> Token:
    """A token by id, or by its plain key."""
    stmt = (
        select(Token).where(Token.id == int(ref))
        if ref.isdigit()
        else select(Token).where(Token.key_hash == hash_key(ref))
    )
    token = await session.scalar(stmt)
    if token is None:
        raise NotFoundError(f"no token {ref!r}")
    return token


async def get_key(session: AsyncSession, token_id: int, user_id: int | None = None) -> tuple[Token, User]:
    """A key and its owner; with `user_id`, only that user's key (others are "not found")."""
    stmt = select(Token, User).join(User, User.id == Token.user_id).where(Token.id == token_id)
    if user_id is not None:
        stmt = stmt.where(Token.user_id == user_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFoundError(f"no key with id {token_id}")
    return row[0], row[1]


async def revoke_token(session: AsyncSession, ref: str) -> Token:
    token = await find_token(session, ref)
    token.enabled = False
    token.revoked_at = token.revoked_at or now_ms()
    return token


async def list_tokens(session: AsyncSession, user: User | None = None) -> list[tuple[Token, User]]:
    stmt = select(Token, User).join(User, User.id == Token.user_id).order_by(Token.id)
    if user is not None:
        stmt = stmt.where(Token.user_id == user.id)
    return [(t, u) for t, u in (await session.execute(stmt)).all()]


async def list_keys(
    session: AsyncSession, *, user_id: int | None = None, offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[Token, User]], int]:
    """Keys by id with their owners, optionally one user's, and their total."""
    conditions = [] if user_id is None else [Token.user_id == user_id]
    total = await session.scalar(select(func.count()).select_from(Token).where(*conditions)) or 0
    stmt = (
        select(Token, User)
        .join(User, User.id == Token.user_id)
        .where(*conditions)
        .order_by(Token.id)
        .offset(offset)
        .limit(limit)
    )
    return [(t, u) for t, u in (await session.execute(stmt)).all()], int(total)
