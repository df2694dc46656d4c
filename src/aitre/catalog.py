"""The in-memory view of keys and channels, kept fresh by watching the catalog version.

A process that commits a change reloads at once and `announce`s it; with Redis the other
instances hear of it over pub/sub (`cluster`) and reload within a moment. Polling the version
row stays as the fallback (and the only way without Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.accounts.auth import KeyCache
from aitre.billing.pricebook import PriceBook
from aitre.channels import repo as channel_repo
from aitre.channels.router import ChannelRouter
from aitre.periodic import cancel, every
from aitre.secrets import SecretBox
from aitre.store.models import Group, Price
from aitre.store.version import read_version


class Catalog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        refresh_seconds: float,
        simulator_base: str = "",
    ) -> None:
        self._sessions = sessions
        self._simulator_base = simulator_base
        self._box = box
        self._refresh_seconds = refresh_seconds
        self.keys = KeyCache(sessions)
        self.router = ChannelRouter()
        self.prices = PriceBook()
        self.on_change: list[Callable[[], Awaitable[None]]] = []
        self.announcers: list[Callable[[], Awaitable[None]]] = []
        self.version = -1
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        async with self._sessions() as session:
            version = await read_version(session)
            rows = await channel_repo.list_channels(session)
            prices = list(await session.scalars(select(Price)))
            groups = list(await session.scalars(select(Group)))
        self.router.load(channel_repo.to_info(r, self._box, self._simulator_base) for r in rows)
        self.prices.load(prices, groups)
        self.keys.clear()
        changed = self.version != -1
        self.version = version
        if changed:
            for callback in self.on_change:
                await callback()

    async def refresh_if_changed(self) -> bool:
        async with self._sessions() as session:
            version = await read_version(session)
        if version == self.version:
            return False
        await self.reload()
        return True

    async def announce(self) -> None:
        """This process committed a change: reload now, and tell the other instances."""
        await self.refresh_if_changed()
        for announcer in self.announcers:
            await announcer()

    def start(self) -> None:
        failed = "catalog refresh failed; keeping the current view"
        self._task = every(self._refresh_seconds, self.refresh_if_changed, "catalog-watch", failed)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
