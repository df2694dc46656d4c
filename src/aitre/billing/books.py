"""The books: what requests leave behind (ledger operations and usage-log rows), written behind
the request path.

Both go through one journal (`journal.py`: appended before the request moves on, so a killed
process loses nothing) and are written to the database by one task, in one transaction per
batch: the ledger rows, the balance columns they change, and the usage rows (`writer.py`: a
row the database refuses is set aside, the others are written). What a dead process left in
its journal is written by the next start (`recovery.py`).

While the database does not answer, the books wait in memory and in the journal, up to
`AITRE_BOOKS_MAX_PENDING` entries. Past that, reservations are refused (503
`billing_unavailable`: no new money moves that could not be written) and usage rows are kept
in the journal only, to be written from it once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import Journal, remove
from aitre.billing.recovery import replay
from aitre.billing.writer import Quarantine, Written, write_batch
from aitre.periodic import cancel, every

log = logging.getLogger(__name__)

_LEDGER, _USAGE = "l", "u"
# Write as soon as this many usage rows wait, even before the interval: bigger batches cost less
# per row, but every waiting row is memory.
_FLUSH_ROWS = 1000


class Books:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        journal_root: Path,
        name: str = "main",
        flush_seconds: float = 0.2,
        fsync: bool = False,
        owner: Callable[[], str] | None = None,
        max_pending: int = 100_000,
        quarantine: Quarantine | None = None,
    ) -> None:
        """Journals live in `journal_root/<name>`: one folder per process, so that several
        workers never write, rotate or delete each other's segments. `owner()`: the instance
        id reserve rows are stamped with when written (it changes if the instance registers
        again)."""
        self._sessions = sessions
        self._journal = Journal(journal_root / name, fsync=fsync)
        self._flush_seconds = flush_seconds
        self.owner = owner or (lambda: name)
        self._max_pending = max(1, max_pending)
        self._check_rows = min(_FLUSH_ROWS, self._max_pending) - 1  # below: nothing to check
        self.quarantine = quarantine or Quarantine(journal_root.parent / "quarantine")
        self.ops: list[dict[str, Any]] = []  # ledger operations not yet in the database
        self.rows: list[dict[str, Any]] = []  # usage-log rows not yet in the database
        self._spilled = False  # usage rows in the journal only (over the bound)
        self._writing = 0  # entries taken out of `ops` and `rows` by a write in progress
        self.lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        # Ledger operations the database did not take (an ending whose hold had already ended,
        # a refused row): the live balances, which applied them, take them back.
        self.on_unwritten: Callable[[list[dict[str, Any]]], None] | None = None
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
        rows = self.rows
        if len(rows) < self._check_rows:
            rows.append(row)
        elif self.full():
            self._spilled = True  # memory is bounded; the journal keeps it
        else:
            rows.append(row)
            if len(rows) >= _FLUSH_ROWS:
                self._wake.set()
        if self._deferring:
            self._journal.add(row)
        else:
            self._journal.append_soon(row)  # a log row, not money: one write per loop turn is enough

    def pending(self) -> int:
        """Entries not yet in the database (the metrics' backlog)."""
        return len(self.ops) + len(self.rows) + self._writing

    def full(self) -> bool:
        """Whether the entries waiting for the database reached the bound: no new reservations."""
        return len(self.ops) + len(self.rows) + self._writing >= self._max_pending

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
        if not self.ops and not self.rows and not self._spilled:
            return
        ops, rows, spilled = self.ops, self.rows, self._spilled
        self.ops, self.rows, self._spilled = [], [], False
        self._writing = len(ops) + len(rows)
        written, caught_up = Written(), Written()
        segments: list[Path] = []
        batch_done = False
        try:
            try:
                segments = self._journal.rotate()
            except OSError:
                # The current segment stays as it is (replayed, harmlessly, by the next start).
                log.exception("the journal could not start a new segment")
            await write_batch(self._sessions, ops, rows, self.owner(), self.quarantine, written)
            batch_done = True
            if spilled and segments:  # the rows kept in the journal only, from the closed segments
                await replay(
                    self._sessions, segments, self.owner(), self.quarantine, caught_up, usage_only=True
                )
            elif spilled:
                self._spilled = True
        except BaseException:
            if not batch_done:  # what was not written is kept, in order, for the next try
                self.ops[:0], self.rows[:0] = written.rest if written.rest is not None else (ops, rows)
            self._spilled = self._spilled or spilled
            raise
        finally:
            self._writing = 0
            unwritten = written.unwritten_ops()
            if unwritten and self.on_unwritten is not None:
                self.on_unwritten(unwritten)
        remove(segments)
        self.written += written.rows + caught_up.rows

    def start(self) -> None:
        failed = "writing the books failed; will retry (the journal keeps everything)"
        self._task = every(self._flush_seconds, self.flush, "books-writer", failed, self._wake)

    async def stop(self) -> bool:
        """Stop the writer and write what waits. Returns whether all of it is in the database;
        if not, the journal keeps it for the next start."""
        async with self.lock:  # a write in progress ends first: never cancelled half-way
            await cancel(self._task)
            self._task = None
            try:
                await self.flush_locked()
            except Exception:
                log.exception(
                    "writing the books at shutdown failed; the journal keeps them for the next start"
                )
        done = not self.ops and not self.rows and not self._spilled
        try:
            self.close()
        except OSError:
            log.exception("closing the journal failed")
            done = False
        return done

    def close(self) -> None:
        """Close the journal; its folder goes too when nothing in it still needs writing."""
        self._journal.close()
        folder = self._journal.folder
        leftovers = list(folder.glob("*.jsonl"))
        if all(p.stat().st_size == 0 for p in leftovers):
            remove(leftovers)
            with contextlib.suppress(OSError):
                folder.rmdir()
