"""Claiming due work with a lease, renewing it, and who may claim.

A row with `next_poll_at <= now` is due; claiming it sets `lease_owner` (the instance id) and
moves `next_poll_at` and `lease_until` to the end of the lease, so nobody else claims it while
the worker holds it, and it is due again by itself if the worker dies. Lease times are the
database's clock (`recovery.db_now`): machines with skewed clocks still agree on whose lease ran
out.

On PostgreSQL every instance claims (`FOR UPDATE SKIP LOCKED`: concurrent claimers take disjoint
rows without waiting for each other). On SQLite one process claims for the database: the holder
of the `tasks` row in `leases` (several workers of one gateway, or the CLI next to it, write the
same file; one claimer keeps their writes from contending). The others still run what they
create or cancel themselves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.recovery import db_now
from aitre.store.models import Task, TaskDelivery

CLAIMER = "tasks"
TASKS = cast(Table, Task.__table__)
DELIVERIES = cast(Table, TaskDelivery.__table__)
_CHUNK = 500


async def database_now(session: AsyncSession) -> int:
    return int(await session.scalar(text(f"SELECT {db_now(session)}")) or 0)


class Claimer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], is_sqlite: bool, lease_s: float) -> None:
        self._sessions = sessions
        self._single = is_sqlite
        self.lease_ms = int(lease_s * 1000)
        self._holder = ""
        self._held_until = 0.0  # time.monotonic(): taken again only when half of it is left

    async def may_claim(self, owner: str) -> bool:
        """Whether this instance claims now: always on PostgreSQL; on SQLite while it holds
        (or can take) the claimer lease, which this renews."""
        if not self._single:
            return True
        if owner == self._holder and time.monotonic() < self._held_until:
            return True
        if await self._take(owner):
            self._holder, self._held_until = owner, time.monotonic() + self.lease_ms / 2000
            return True
        self._holder = ""
        return False

    async def _take(self, owner: str) -> bool:
        async with self._sessions() as session, session.begin():
            now = db_now(session)
            taken = await session.execute(
                text(
                    f"UPDATE leases SET owner = :me, until = {now} + :ms "
                    f"WHERE name = :name AND (owner = :me OR until < {now})"
                ),
                {"me": owner, "ms": self.lease_ms, "name": CLAIMER},
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return True
            made = await session.execute(
                text(
                    f"INSERT INTO leases (name, owner, until) VALUES (:name, :me, {now} + :ms) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                {"me": owner, "ms": self.lease_ms, "name": CLAIMER},
            )
            return bool(made.rowcount == 1)  # type: ignore[attr-defined]

    async def let_go(self, owner: str) -> None:
        """At shutdown: another process may claim at once."""
        if self._single:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    text("DELETE FROM leases WHERE name = :name AND owner = :me"),
                    {"name": CLAIMER, "me": owner},
                )

    async def claim_tasks(self, owner: str, limit: int) -> tuple[int, list[Any]]:
        """Up to `limit` due tasks, leased to `owner`; and the database's time of the claim."""
        return await self._claim(TASKS, "next_poll_at", owner, limit, lease_until=True)

    async def claim_deliveries(self, owner: str, limit: int) -> tuple[int, list[Any]]:
        """Due notifyHook calls, each only when no earlier call of its task is still pending."""
        table = DELIVERIES
        earlier = table.alias("earlier")
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.task_id == table.c.task_id,
                earlier.c.seq < table.c.seq,
                earlier.c.status == "pending",
            )
            .exists()
        )
        return await self._claim(table, "next_at", owner, limit, extra=[~blocked])

    async def _claim(
        self,
        table: Table,
        due: str,
        owner: str,
        limit: int,
        lease_until: bool = False,
        extra: Sequence[Any] = (),
    ) -> tuple[int, list[Any]]:
        col = table.c[due]
        async with self._sessions() as session, session.begin():
            now = await database_now(session)
            pick = select(table.c.id).where(col <= now, *extra).order_by(col).limit(limit)
            if not self._single:
                pick = pick.with_for_update(skip_locked=True, of=table)
            ids = list(await session.scalars(pick))
            if not ids:
                return now, []
            until = now + self.lease_ms
            values: dict[str, Any] = {due: until, "lease_owner": owner}
            if lease_until:
                values["lease_until"] = until
            rows = await session.execute(
                update(table).where(table.c.id.in_(ids), col <= now).values(**values).returning(*table.c)
            )
            return now, list(rows)

    async def renew(self, table: Table, due: str, owner: str, ids: Sequence[Any]) -> None:
        """Push the leases `owner` holds on `ids` to a full lease from now."""
        col = table.c[due]
        async with self._sessions() as session, session.begin():
            until = await database_now(session) + self.lease_ms
            values: dict[str, Any] = {due: until}
            if "lease_until" in table.c:
                values["lease_until"] = until
            for start in range(0, len(ids), _CHUNK):
                chunk = list(ids[start : start + _CHUNK])
                await session.execute(
                    update(table)
                    .where(table.c.id.in_(chunk), table.c.lease_owner == owner, col.is_not(None))
                    .values(**values)
                )
