"""Pricing groups: a name and a multiplier every price of its users is multiplied by."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.repo import AccountError, check_name
from aitre.billing.prices import dec
from aitre.errors import ConflictError, NotFoundError
from aitre.store.models import Group, User


def parse_multiplier(value: object) -> str:
    """A multiplier >= 0 as a normalised decimal string (`"1.5"`)."""
    if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, bool):
        raise AccountError("a multiplier is required: a number >= 0")
    try:
        number = dec(value)
    except ValueError:
        raise AccountError(f"a multiplier must be a number >= 0, not {value!r}") from None
    return format(number.normalize(), "f")


async def list_groups(session: AsyncSession) -> list[tuple[Group, int]]:
    """Every group with the number of users in it, by name."""
    stmt = select(User.group_name, func.count()).group_by(User.group_name)
    counts = {name: int(n) for name, n in (await session.execute(stmt)).all()}
    rows = await session.scalars(select(Group).order_by(Group.name))
    return [(g, counts.get(g.name, 0)) for g in rows]


async def get_group(session: AsyncSession, name: str) -> Group:
    row = await session.get(Group, name)
    if row is None:
        raise NotFoundError(f"no group {name!r}")
    return row


async def set_group(
    session: AsyncSession,
    name: str,
    multiplier: object | None = None,
    description: str | None = None,
    *,
    create_only: bool = False,
) -> tuple[Group, bool]:
    """Create a group or change it; returns the row and whether it was created.

    A new group needs a multiplier; `None` leaves a field of an existing group as it is.
    """
    check_name("group", name)
    row = await session.get(Group, name)
    created = row is None
    if row is not None and create_only:
        raise ConflictError(f"group {name!r} already exists")
    if row is None:
        if multiplier is None:
            raise AccountError("a new group needs a multiplier")
        row = Group(name=name, multiplier="1", description="")
        session.add(row)
    if multiplier is not None:
        row.multiplier = parse_multiplier(multiplier)
    if description is not None:
        row.description = description
    await session.flush()
    return row, created


async def member_count(session: AsyncSession, name: str) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(User).where(User.group_name == name)) or 0
    )


async def delete_group(session: AsyncSession, name: str) -> None:
    """Remove a group; refused while users are in it (they would silently fall back to 1x)."""
    row = await get_group(session, name)
    members = await member_count(session, name)
    if members:
        raise ConflictError(f"group {name!r} still has {members} user(s); move them to another group first")
    await session.delete(row)
    await session.flush()
