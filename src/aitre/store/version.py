"""A counter in `meta` that every change to keys, users or channels bumps. Running gateways poll
it (cheap: one primary-key read) and reload their caches when it moves, so the CLI and other
instances can change things without a restart."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.store.models import Meta

_KEY = "catalog_version"


async def read_version(session: AsyncSession) -> int:
    value = await session.scalar(select(Meta.value).where(Meta.key == _KEY))
    return int(value) if value else 0


async def bump_version(session: AsyncSession) -> int:
    row = await session.get(Meta, _KEY)
    if row is None:
        row = Meta(key=_KEY, value="1")
        session.add(row)
    else:
        row.value = str(int(row.value or 0) + 1)
    await session.flush()
    return int(row.value)
