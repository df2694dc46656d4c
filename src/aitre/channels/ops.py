"""What the gateway does to channels on its own: disable one whose credentials the upstream
refused, and probe cooled or auto-disabled ones until they answer again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.channels.health import ChannelHealth
from aitre.channels.model import ChannelInfo
from aitre.periodic import cancel, every
from aitre.store.models import Channel, now_ms
from aitre.store.version import bump_version

if TYPE_CHECKING:
    from aitre.state import AppState

log = logging.getLogger(__name__)
AUTO_PREFIX = "auto: "


class ChannelOps:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], health: ChannelHealth) -> None:
        self._sessions = sessions
        self._health = health
        self._tasks: set[asyncio.Task[None]] = set()
        self._disabling: set[int] = set()
        self._loop: asyncio.Task[None] | None = None
        self.state: AppState | None = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- auto-disable ------------------------------------------------------------------------
    def auto_disable(self, channel: ChannelInfo, reason: str) -> None:
        if channel.id in self._disabling:
            return
        self._disabling.add(channel.id)
        self._spawn(self._disable(channel, reason))

    async def _disable(self, channel: ChannelInfo, reason: str) -> None:
        try:
            async with self._sessions() as session, session.begin():
                row = await session.get(Channel, channel.id)
                if row is None or not row.enabled:
                    return
                row.enabled = False
                row.disabled_reason = (AUTO_PREFIX + reason)[:1000]
                row.config = {**(row.config or {}), "auto_disabled": True}
                await bump_version(session)
            log.warning("channel %s (%s) disabled: %s", channel.id, channel.name, reason)
            if self.state is not None:
                await self.state.catalog.announce()
        except Exception:
            log.exception("could not disable channel %s", channel.id)
        finally:
            self._disabling.discard(channel.id)

    async def reenable(self, channel: ChannelInfo) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Channel, channel.id)
            if row is None or row.enabled or not (row.config or {}).get("auto_disabled"):
                return
            row.enabled = True
            row.disabled_reason = ""
            row.config = {k: v for k, v in (row.config or {}).items() if k != "auto_disabled"}
            await bump_version(session)
        log.warning("channel %s (%s) answers again: re-enabled", channel.id, channel.name)
        if self.state is not None:
            await self.state.catalog.announce()

    # --- balance -------------------------------------------------------------------------------
    async def refresh_balance(self, state: AppState, channel: ChannelInfo) -> str | None:
        """Ask the upstream for the account's balance and keep it on the channel row."""
        value = await state.adapter_for(channel).balance(state, channel)
        if value is None:
            return None
        async with self._sessions() as session, session.begin():
            row = await session.get(Channel, channel.id)
            if row is not None:
                row.balance = str(value)
                row.balance_at = now_ms()
        return str(value)

    # --- probing -----------------------------------------------------------------------------
    def start(self, state: AppState) -> None:
        self.state = state
        self._loop = every(
            state.settings.probe_interval_seconds,
            lambda: self.probe_once(state),
            "channel-prober",
            "channel probe round failed",
        )

    async def stop(self) -> None:
        await cancel(self._loop)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def due(self, state: AppState) -> list[ChannelInfo]:
        """Channels worth probing: cooled by the breaker, or disabled by us (not by a person)."""
        cooling = set(self._health.cooling())
        out = []
        for ch in state.catalog.router.channels:
            auto_disabled = not ch.enabled and ch.config.get("auto_disabled")
            if (ch.enabled and ch.id in cooling) or (auto_disabled and self._reenable_allowed(state, ch)):
                out.append(ch)
        return out

    @staticmethod
    def _reenable_allowed(state: AppState, ch: ChannelInfo) -> bool:
        return bool(ch.config.get("auto_reenable", state.settings.auto_reenable))

    async def probe_once(self, state: AppState) -> list[int]:
        """Probe every due channel; returns the ids that answered."""
        recovered = []
        for ch in self.due(state):
            if await state.adapter_for(ch).probe(state, ch):
                recovered.append(ch.id)
                self._health.reset(ch.id)
                if not ch.enabled:
                    await self.reenable(ch)
        return recovered
