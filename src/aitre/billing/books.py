"""The books: what requests leave behind (ledger operations and usage-log rows), written behind
the request path.

Both go through one journal (`journal.py`: appended before the request moves on, so a killed
process loses nothing) and are written to the database by one task, in one transaction per
batch: the ledger rows, the balance columns they change, and the usage rows. On start, journal
segments the database never got are replayed, and reservations whose request died with the
process are refunded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import Journal, read_segments, remove
from aitre.billing.ledger_rows import apply_once, refund_open_holds, write_ops
from aitre.periodic import cancel, every
from aitre.store.bulk import insert_rows
from aitre.store.models import UsageLog

log = logging.getLogger(__name__)

USAGE_COLUMNS = (
    "created_at", "request_id", "user_id", "token_id", "channel_id", "endpoint", "model", "upstream_model",
    "stream", "prompt_tokens", "completion_tokens", "usage_estimated", "status_code", "error", "latency_ms",
    "ttfb_ms", "client_ip", "quota", "attempts",
)  # fmt: skip
_LEDGER, _USAGE = "l", "u"
# Write as soon as this many usage rows wait, even before the interval: bigger batches cost less
# per row, but every waiting row is memory.
_FLUSH_ROWS = 1000


_USAGE_FIELDS = operator.itemgetter(*USAGE_COLUMNS[:-1])


def usage_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A usage row as the insert's parameters (thousands a second: one C call, not a loop)."""
    try:
        values: tuple[Any, ...] = _USAGE_FIELDS(row)
    except KeyError:  # a row journaled with a field missing: NULL it
        values = tuple(row.get(c) for c in USAGE_COLUMNS[:-1])
    attempts = row.get("attempts")
    return (*values, orjson.dumps(attempts if attempts is not None else []).decode())


class Books:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        journal_root: Path,
        name: str = "main",
        flush_seconds: float = 0.2,
        fsync: bool = False,
    ) -> None:
        """Journals live in `journal_root/<name>`: one folder per process, so that several
        workers never write, rotate or delete each other's segments."""
        self._sessions = sessions
        self._root = journal_root
        self._journal = Journal(journal_root / name, fsync=fsync)
        self._flush_seconds = flush_seconds
        self.ops: list[dict[str, Any]] = []  # ledger operations not yet in the database
        self.rows: list[dict[str, Any]] = []  # usage-log rows not yet in the database
        self.lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.on_flushed: list[Callable[[], None]] = []
        self._deferring = False
        self._wake = asyncio.Event()

    # --- appending -------------------------------------------------------------------------
    def ledger(self, op: dict[str, Any], now: bool, lazy: bool = False) -> None:
        """A ledger operation; `now`: write it to the journal before returning (it ends a
        request whose answer is about to leave), else at the end of this loop turn; `lazy`:
        with whatever is written next (a reservation of money that lives in this process only:
        lost with the process, it was never spent, and its settlement comes after it)."""
        op["t"] = _LEDGER
        self.ops.append(op)
        if self._deferring or lazy:
            self._journal.add(op)
        elif now:
            self._journal.append(op)
        else:
            self._journal.append_soon(op)

    def usage(self, row: dict[str, Any]) -> None:
        row["t"] = _USAGE
        self.rows.append(row)
        if len(self.rows) >= _FLUSH_ROWS:
            self._wake.set()
        if self._deferring:
            self._journal.add(row)
        else:
            self._journal.append_soon(row)  # a log row, not money: one write per loop turn is enough

    def defer(self) -> None:
        """Until `write_deferred()`: buffer what is appended, then write it all at once. The end
        of a request (its settlement and its usage row) costs one write(2), not two."""
        self._deferring = True

    def write_deferred(self) -> None:
        self._deferring = False
        self._journal.flush()

    # --- writing ---------------------------------------------------------------------------
    async def flush(self) -> None:
        async with self.lock:
            await self.flush_locked()

    async def flush_locked(self) -> None:
        if not self.ops and not self.rows:
            return
        ops, rows = self.ops, self.rows
        self.ops, self.rows = [], []
        segments = self._journal.rotate()
        try:
            async with self._sessions() as session, session.begin():
                if ops:
                    await write_ops(session, ops)
                if rows:
                    await insert_rows(
                        await session.connection(),
                        "usage_logs",
                        USAGE_COLUMNS,
                        [usage_values(r) for r in rows],
                    )
        except BaseException:
            self.ops[:0], self.rows[:0] = ops, rows  # keep them, in order, for the next try
            raise
        remove(segments)
        self.written += len(rows)

    async def recover(self) -> list[dict[str, Any]]:
        """Replay what earlier processes journaled but never wrote (every folder under the
        journal root), and refund the reservations of requests that died with them. Returns
        the refunds made. Run before serving, by the only process using the database's
        journals: the single worker, or the parent of several before it starts them."""
        own = self._journal.rotate()
        others = [
            p
            for p in sorted(self._root.glob("**/*.jsonl"))
            if p not in own and p.parent != self._journal.folder
        ]
        leftovers = others + own
        entries = list(read_segments(leftovers))
        ops = [e for e in entries if e.get("t", _LEDGER) == _LEDGER and "op" in e]
        rows = [e for e in entries if e.get("t") == _USAGE]
        async with self._sessions() as session, session.begin():
            for op in ops:
                await apply_once(session, op)
            missing = await _missing_rows(session, rows)
            if missing:
                await insert_rows(
                    await session.connection(),
                    "usage_logs",
                    USAGE_COLUMNS,
                    [usage_values(r) for r in missing],
                )
            refunded = await refund_open_holds(session)
        remove(leftovers)
        for folder in {p.parent for p in others}:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if entries or refunded:
            log.warning(
                "recovery: replayed %d ledger operations and %d usage rows, refunded %d interrupted requests",
                len(ops),
                len(missing),
                len(refunded),
            )
        return refunded

    def start(self) -> None:
        failed = "writing the books failed; will retry (the journal keeps everything)"
        self._task = every(self._flush_seconds, self.flush, "books-writer", failed, self._wake)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self.flush()
        self.close()

    def close(self) -> None:
        """Close the journal; its folder goes too when nothing in it still needs writing."""
        self._journal.close()
        folder = self._journal.folder
        leftovers = list(folder.glob("*.jsonl"))
        if all(p.stat().st_size == 0 for p in leftovers):
            remove(leftovers)
            with contextlib.suppress(OSError):
                folder.rmdir()


async def _missing_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    ids = [r["request_id"] for r in rows]
    known = set(await session.scalars(select(UsageLog.request_id).where(UsageLog.request_id.in_(ids))))
    return [r for r in rows if r["request_id"] not in known]
