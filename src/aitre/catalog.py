"""The in-memory view of keys and channels, kept fresh by watching the catalog version."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.accounts.auth import KeyCache
from aitre.channels import repo as channel_repo
from aitre.channels.router import ChannelRouter
from aitre.secrets import SecretBox
from aitre.store.version import read_version

log = logging.getLogger(__name__)


class Catalog:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], box: SecretBox, refresh_seconds: float
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._refresh_seconds = refresh_seconds
        self.keys = KeyCache(sessions)
        self.router = ChannelRouter()
        self.version = -1
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        async with self._sessions() as session:
            version = await read_version(session)
            rows = await channel_repo.list_channels(session)
        self.router.load(channel_repo.to_info(r, self._box) for r in rows)
        self.keys.clear()
        self.version = version

    async def refresh_if_changed(self) -> bool:
        async with self._sessions() as session:
            version = await read_version(session)
        if version == self.version:
            return False
        await self.reload()
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="catalog-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh_if_changed()
            except Exception:
                log.exception("catalog refresh failed; keeping the current view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
