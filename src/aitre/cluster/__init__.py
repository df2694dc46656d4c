"""What instances sharing one database and one Redis (`AITRE_REDIS_URL`) tell each other:
catalog changes (keys, channels, prices) and channel cooldowns, over Redis pub/sub.

Balances and rate windows live in Redis already (`billing.redis_bank`, `billing.redis_limits`);
tasks are shared through the database (`tasks.claim`). Without Redis none of this runs: each
instance polls the catalog version and keeps its own breaker.
"""

from __future__ import annotations

import logging
from typing import Any

from aitre.catalog import Catalog
from aitre.channels.health import ChannelHealth
from aitre.cluster.bus import Bus
from aitre.cluster.health import SharedHealth

log = logging.getLogger(__name__)

CATALOG = "catalog"


class Cluster:
    def __init__(self, redis_url: str, namespace: str, catalog: Catalog, health: ChannelHealth) -> None:
        self.bus = Bus(redis_url, namespace)
        self._catalog = catalog
        self.health = SharedHealth(health, self.bus)
        self.bus.subscribe(CATALOG, self._catalog_changed)
        self.bus.on_connect(self._catch_up)
        catalog.announcers.append(self._announce)

    async def _announce(self) -> None:
        await self.bus.publish(CATALOG, {"v": self._catalog.version})

    async def _catalog_changed(self, message: dict[str, Any]) -> None:
        version = message.get("v")
        if not isinstance(version, int) or version != self._catalog.version:
            await self._catalog.refresh_if_changed()

    async def _catch_up(self) -> None:
        await self._catalog.refresh_if_changed()

    def start(self) -> None:
        self.bus.start()

    async def stop(self) -> None:
        await self.health.close()
        await self.bus.stop()


async def announce_catalog_change(redis_url: str, namespace: str) -> None:
    """Tell running instances that the catalog changed, from outside a gateway (the CLI)."""
    bus = Bus(redis_url, namespace, max_connections=2)
    try:
        await bus.publish(CATALOG, {})
    finally:
        await bus.stop()
