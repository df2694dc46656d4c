"""The engine's sessions: reads as they come; write transactions one at a time per process on
SQLite.

SQLite takes one writer at a time, and a connection that finds the database locked does not
queue: its busy handler sleeps (1 ms, then longer, up to 100 ms) and tries again. The engine's
writes are short (about a millisecond), but with a few dozen of them at once from the pool's
connections, most of the time went to those sleeps (profiled over 400 task creations: 35 ms per
conditional update, against about 1 ms in turn). Waiting in turn on an asyncio lock costs
nothing.
PostgreSQL has row locks: its writes go in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class TaskDb:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], one_writer: bool) -> None:
        self.sessions = sessions
        self._turn: asyncio.Lock | None = asyncio.Lock() if one_writer else None

    def read(self) -> AsyncSession:
        """A session for queries (`async with db.read() as session`)."""
        return self.sessions()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed when the block ends."""
        async with contextlib.AsyncExitStack() as stack:
            if self._turn is not None:
                await stack.enter_async_context(self._turn)
            session = await stack.enter_async_context(self.sessions())
            await stack.enter_async_context(session.begin())
            yield session
