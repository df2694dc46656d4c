"""Usage-log rows leave the request path: appended to a buffer, written in batches by one
background task, and flushed completely on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.store.models import UsageLog, now_ms

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], flush_seconds: float = 0.5, batch_size: int = 500
    ) -> None:
        self._sessions = sessions
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._buffer: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.written = 0

    def record(self, **row: Any) -> None:
        row.setdefault("created_at", now_ms())
        self._buffer.append(row)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

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
            while self._buffer:
                batch = self._buffer[: self._batch_size]
                async with self._sessions() as session, session.begin():
                    await session.execute(insert(UsageLog), batch)
                del self._buffer[: len(batch)]
                self.written += len(batch)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
