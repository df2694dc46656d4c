"""The `tasks` table: rows to `TaskView`s, inserts, reads, lists, and the one conditional update
every change goes through.

Core statements, not ORM objects: the workers read and write thousands of rows a second with
10,000 tasks open, and ORM identity maps and attribute instrumentation would cost more than the
work itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.store.models import Task
from aitre.tasks.protocol import TERMINAL, TaskFilter, TaskView

T = cast(Table, Task.__table__)
OPEN = "open"


def view(row: Row[Any] | Mapping[str, Any]) -> TaskView:
    m: Any = row._mapping if isinstance(row, Row) else row
    return TaskView(
        id=m["id"],
        kind=m["kind"],
        action=m["action"],
        model=m["model"],
        user_id=m["user_id"],
        token_id=m["token_id"],
        group=m["group_name"],
        status=m["status"],
        progress=m["progress"],
        request=m["request"] or {},
        result=m["result"] or {},
        media=m["media"] or [],
        error=m["error"],
        error_code=m["error_code"],
        channel_id=m["channel_id"],
        upstream_id=m["upstream_id"],
        submit_key=m["submit_key"],
        attempts=m["attempts"],
        hold_id=m["hold_id"],
        reserved=m["reserved"],
        cost=m["cost"],
        parent_id=m["parent_id"],
        notify_hook=m["notify_hook"],
        client_state=m["client_state"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        updated_at=m["updated_at"],
        deadline_at=m["deadline_at"],
        history=m["history"] or [],
        version=m["version"],
        notify_seq=m["notify_seq"],
        billed_at=m["billed_at"],
        channel_pinned=bool(m["channel_pinned"]),
        deleted_at=m["deleted_at"],
    )


# Column of each TaskView field that is named differently.
_COLUMN = {"group": "group_name"}


def columns(values: Mapping[str, Any]) -> dict[str, Any]:
    return {_COLUMN.get(k, k): v for k, v in values.items()}


async def insert(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(T.insert().values(**columns(values)))


async def get(session: AsyncSession, task_id: str) -> TaskView | None:
    row = (await session.execute(select(T).where(T.c.id == task_id))).first()
    return view(row) if row is not None else None


async def get_many(session: AsyncSession, task_ids: Sequence[str]) -> dict[str, TaskView]:
    found: dict[str, TaskView] = {}
    for start in range(0, len(task_ids), 500):
        chunk = list(task_ids[start : start + 500])
        for row in await session.execute(select(T).where(T.c.id.in_(chunk))):
            task = view(row)
            found[task.id] = task
    return found


def _where(filt: TaskFilter) -> list[Any]:
    conds: list[Any] = []
    if filt.user_id is not None:
        conds.append(T.c.user_id == filt.user_id)
    if filt.kind:
        conds.append(T.c.kind == filt.kind)
    if filt.status == OPEN:
        conds.append(T.c.status.not_in(sorted(TERMINAL)))
    elif filt.status:
        conds.append(T.c.status == filt.status)
    if filt.channel_id is not None:
        conds.append(T.c.channel_id == filt.channel_id)
    if filt.action:
        conds.append(T.c.action == filt.action)
    if filt.since is not None:
        conds.append(T.c.created_at >= filt.since)
    if filt.until is not None:
        conds.append(T.c.created_at < filt.until)
    if filt.deleted is not None:
        conds.append(T.c.deleted_at.is_not(None) if filt.deleted else T.c.deleted_at.is_(None))
    return conds


async def page(
    session: AsyncSession, filt: TaskFilter, number: int, per_page: int
) -> tuple[list[TaskView], int]:
    conds = _where(filt)
    total = await session.scalar(select(func.count()).select_from(T).where(*conds))
    rows = await session.execute(
        select(T)
        .where(*conds)
        .order_by(T.c.created_at.desc(), T.c.id.desc())
        .limit(per_page)
        .offset((number - 1) * per_page)
    )
    return [view(r) for r in rows], int(total or 0)


async def seek(
    session: AsyncSession, filt: TaskFilter, after: TaskView | None, limit: int, ascending: bool
) -> tuple[list[TaskView], bool]:
    """Keyset paging on (created_at, id): one more row than asked tells whether more follow."""
    conds = _where(filt)
    if after is not None:
        key = (T.c.created_at, T.c.id)
        mark = (after.created_at, after.id)
        conds.append(tuple_(*key) > tuple_(*mark) if ascending else tuple_(*key) < tuple_(*mark))
    order = (T.c.created_at.asc(), T.c.id.asc()) if ascending else (T.c.created_at.desc(), T.c.id.desc())
    rows = await session.execute(select(T).where(*conds).order_by(*order).limit(limit + 1))
    found = [view(r) for r in rows]
    return found[:limit], len(found) > limit


async def mark_deleted(session: AsyncSession, task_id: str, at: int) -> bool:
    """Not a change of the task (no version, no history, no hook): its owner stops seeing it."""
    result = await session.execute(
        update(T).where(T.c.id == task_id, T.c.deleted_at.is_(None)).values(deleted_at=at)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def write(
    session: AsyncSession, task: TaskView, values: Mapping[str, Any], owner: str | None = None
) -> bool:
    """Change the row as `task` saw it: only if nobody changed it since (its `version`) and, for
    a worker (`owner`), only while the worker still holds its lease. Whether it was written."""
    conds = [T.c.id == task.id, T.c.version == task.version]
    if owner is not None:
        conds.append(T.c.lease_owner == owner)
    result = await session.execute(
        update(T).where(*conds).values(**columns(values), version=task.version + 1)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def next_due(session: AsyncSession) -> int | None:
    """When the earliest work is due (ms), if any: the partial index answers it."""
    value = await session.scalar(select(func.min(T.c.next_poll_at)).where(T.c.next_poll_at.is_not(None)))
    return int(value) if value is not None else None


async def reschedule(session: AsyncSession, owner: str, due: Mapping[str, int]) -> None:
    """Tasks a worker looked at that did not change: their lease ends, their next poll is due
    (one statement for all of them: most polls find nothing new)."""
    stmt = (
        update(T)
        .where(T.c.id == bindparam("tid"), T.c.lease_owner == owner)
        .values(next_poll_at=bindparam("due"), lease_owner=None, lease_until=None)
    )
    await session.execute(stmt, [{"tid": k, "due": v} for k, v in due.items()])


async def keep_upstream_id(session: AsyncSession, task_id: str, upstream_id: str) -> bool:
    """Record an upstream job on a row that has none yet (whatever else happened to it)."""
    result = await session.execute(
        update(T).where(T.c.id == task_id, T.c.upstream_id.is_(None)).values(upstream_id=upstream_id)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
