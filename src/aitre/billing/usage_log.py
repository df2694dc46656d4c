"""Usage-log rows leave the request path: appended to a buffer (and to a journal, so a crash
loses none), written in batches by one background task, and flushed completely on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import Journal, read_segments, remove
from aitre.store.models import UsageLog, now_ms

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        journal_dir: Path,
        flush_seconds: float = 0.5,
        batch_size: int = 500,
    ) -> None:
        self._sessions = sessions
        self._journal = Journal(journal_dir)
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._buffer: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.written = 0

    def record(self, **row: Any) -> None:
        row.setdefault("created_at", now_ms())
        self._journal.append(row)
        self._buffer.append(row)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    async def recover(self) -> int:
        """Write rows journaled by a previous run that never reached the database."""
        leftovers = self._journal.rotate()
        rows = list(read_segments(leftovers))
        if rows:
            async with self._sessions() as session, session.begin():
                ids = [r["request_id"] for r in rows]
                known = set(
                    await session.scalars(select(UsageLog.request_id).where(UsageLog.request_id.in_(ids)))
                )
                fresh = [r for r in rows if r["request_id"] not in known]
                if fresh:
                    await session.execute(insert(UsageLog), fresh)
            log.warning(
                "usage log recovery: %d rows from the journal, %d were missing", len(rows), len(fresh)
            )
        remove(leftovers)
        return len(rows)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-log-writer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep the rows and the writer alive; retry on the next tick
                log.exception("writing usage logs failed; will retry")
                await asyncio.sleep(self._flush_seconds)

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            rows, self._buffer = self._buffer, []
            segments = self._journal.rotate()
            try:
                async with self._sessions() as session, session.begin():
                    for i in range(0, len(rows), self._batch_size):
                        await session.execute(insert(UsageLog), rows[i : i + self._batch_size])
            except BaseException:
                self._buffer[:0] = rows
                raise
            remove(segments)
            self.written += len(rows)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        self._journal.close()
