"""Writing a batch of the books so that a row the database refuses never holds up the others.

A batch is one transaction. When the database refuses it for its content (a value too long
for its column, a number out of range, a broken constraint), the batch is split in halves,
each written on its own, until the refused entries stand alone: those are set aside in a
quarantine file (`<data_dir>/quarantine/`, one JSON line each, in the journal's format) and
logged, and everything else is written. When the database does not answer at all, nothing is
set aside: what was not written goes back to the caller, to be tried again.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.ledger_rows import write_ops
from aitre.store.bulk import insert_rows
from aitre.store.models import LedgerEntry, UsageLog

log = logging.getLogger(__name__)

USAGE_COLUMNS = (
    "created_at", "request_id", "user_id", "token_id", "channel_id", "endpoint", "model", "upstream_model",
    "stream", "prompt_tokens", "completion_tokens", "usage_estimated", "status_code", "error", "latency_ms",
    "ttfb_ms", "client_ip", "quota", "attempts",
)  # fmt: skip
_USAGE_FIELDS = operator.itemgetter(*USAGE_COLUMNS[:-1])
_SQLITE_REFUSALS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
)


def refused(exc: BaseException) -> bool:
    """The database (or its driver) refused what was sent, as opposed to not answering: the
    same batch would fail again, the next one need not."""
    if isinstance(exc, (OverflowError, TypeError, ValueError)):  # a driver could not convert a value
        return True
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    if isinstance(exc, (IntegrityError, DataError)) or isinstance(exc.orig, _SQLITE_REFUSALS):
        return True
    # PostgreSQL: class 22 (data exception) and 23 (integrity constraint violation).
    state = str(getattr(exc.orig, "sqlstate", "") or "")
    return state[:2] in ("22", "23")


class Quarantine:
    """Entries the database refused, kept as JSON lines under `folder` (one file a day)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, entry: dict[str, Any], error: BaseException) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / time.strftime("refused-%Y%m%d.jsonl")
        reason = str(error).splitlines()[0][:500] if str(error) else type(error).__name__
        line = orjson.dumps({**entry, "refused": reason}, default=str) + b"\n"
        with path.open("ab") as f:
            f.write(line)
        log.error(
            "the database refused a %s (%s); kept in %s, the rest is written",
            "ledger operation" if "op" in entry else "usage row",
            reason,
            path,
        )


@dataclass
class Written:
    """What a write did besides writing: endings dropped (their hold had already ended) and
    entries quarantined. Ledger operations in either changed no balance in the database."""

    dropped: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    ops: int = 0  # ledger operations written
    rows: int = 0  # usage rows written
    # When the write stopped part-way (the database stopped answering): what was not written.
    rest: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    def unwritten_ops(self) -> list[dict[str, Any]]:
        return self.dropped + [e for e in self.quarantined if "op" in e]


def usage_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A usage row as the insert's parameters (thousands a second: one C call, not a loop)."""
    try:
        values: tuple[Any, ...] = _USAGE_FIELDS(row)
    except KeyError:  # a row journaled with a field missing: NULL it
        values = tuple(row.get(c) for c in USAGE_COLUMNS[:-1])
    attempts = row.get("attempts")
    return (*values, orjson.dumps(attempts if attempts is not None else []).decode())


Part = tuple[list[dict[str, Any]], list[dict[str, Any]]]


async def _write(session: AsyncSession, part: Part, owner: str | None) -> list[dict[str, Any]]:
    ops, rows = part
    dropped = await write_ops(session, ops, owner) if ops else []
    if rows:
        await insert_rows(
            await session.connection(), "usage_logs", USAGE_COLUMNS, [usage_values(r) for r in rows]
        )
    return dropped


def _split(part: Part) -> list[Part]:
    ops, rows = part
    if ops and rows:
        return [(ops, []), ([], rows)]
    items = ops or rows
    half = len(items) // 2
    return [(items[:half], []), (items[half:], [])] if ops else [([], items[:half]), ([], items[half:])]


async def write_batch(
    sessions: async_sessionmaker[AsyncSession],
    ops: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    owner: str | None,
    quarantine: Quarantine,
    written: Written,
) -> None:
    """Write `ops` and `rows`, in order; fills `written` as it goes. When the database stops
    answering (or the task is cancelled), `written.rest` says what was not written, and the
    error goes on to the caller."""
    queue: deque[Part] = deque([(ops, rows)])
    while queue:
        part = queue.popleft()
        try:
            try:
                async with sessions() as session, session.begin():
                    dropped = await _write(session, part, owner)
            except Exception as exc:
                if not refused(exc):
                    raise
                if len(part[0]) + len(part[1]) > 1:
                    queue.extendleft(reversed(_split(part)))
                else:
                    await _set_aside(sessions, part, exc, quarantine, written)
                continue
        except BaseException:
            written.rest = (
                [o for p in (part, *queue) for o in p[0]],
                [r for p in (part, *queue) for r in p[1]],
            )
            raise
        written.dropped.extend(dropped)
        written.ops += len(part[0]) - len(dropped)
        written.rows += len(part[1])
        for op in dropped:
            log.warning(
                "dropped the %s of hold %s (%d units): the hold had already ended (refunded by recovery?)",
                op["op"],
                op["hold_id"],
                op.get("used", 0),
            )


async def _set_aside(
    sessions: async_sessionmaker[AsyncSession],
    part: Part,
    error: Exception,
    quarantine: Quarantine,
    written: Written,
) -> None:
    entry = (part[0] or part[1])[0]
    if part[0] and await _already_written(sessions, entry):
        return  # a batch committed before, whose commit we did not hear of
    quarantine.keep(entry, error)
    written.quarantined.append(entry)


async def _already_written(sessions: async_sessionmaker[AsyncSession], op: dict[str, Any]) -> bool:
    kinds = [op["op"], "charge"] if op["op"] in ("reserve", "settle") else [op["op"]]
    async with sessions() as session:
        found = await session.scalar(
            select(LedgerEntry.id)
            .where(LedgerEntry.hold_id == op["hold_id"], LedgerEntry.kind.in_(kinds))
            .limit(1)
        )
    return found is not None


async def not_written(session: AsyncSession, ops: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journaled operations the database does not have yet (as their own row, or, for a
    reservation or settlement, folded into a `charge` row)."""
    holds = list({op["hold_id"] for op in ops})
    have: set[tuple[str, str]] = set()
    for start in range(0, len(holds), 500):
        result = await session.execute(
            select(LedgerEntry.hold_id, LedgerEntry.kind).where(
                LedgerEntry.hold_id.in_(holds[start : start + 500])
            )
        )
        have.update((h, k) for h, k in result)
    out = []
    for op in ops:
        hold, kind = op["hold_id"], op["op"]
        if (hold, kind) in have or (kind in ("reserve", "settle") and (hold, "charge") in have):
            continue
        out.append(op)
    return out


async def missing_rows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journaled usage rows the database does not have yet."""
    ids = list({r.get("request_id") for r in rows})
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        known.update(
            await session.scalars(
                select(UsageLog.request_id).where(UsageLog.request_id.in_(ids[start : start + 500]))
            )
        )
    return [r for r in rows if r.get("request_id") not in known]
