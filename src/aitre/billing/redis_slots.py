"""A key's requests in flight counted across every instance (`AITRE_KEY_MAX_INFLIGHT` with
Redis), at no extra round trip: the slot is taken by the reservation's own script
(`redis_bank._RESERVE`) and given back with the give-backs (`redis_reseed._GIVE`).

Each key has a hash in Redis: one field per gateway process, its requests between reservation
and settlement. A process that dies cannot give its slots back, so each keeps an *alive* mark
(`<ns>:alive:<process>`, refreshed every `_BEAT` seconds, gone `_ALIVE_MS` after the last);
the reservation script counts only the fields of processes still marked alive and deletes the
others. A Redis that lost everything lost the counts too: releases never take a field below
zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_BEAT = 2.0
_ALIVE_MS = 10_000


class KeySlots:
    def __init__(self, redis: Redis, namespace: str, cap: int) -> None:
        self._redis = redis
        self.cap = cap
        self.me = secrets.token_hex(6)  # this process's field in every key's hash
        self._ns = namespace
        self.alive_prefix = f"{namespace}:alive:"
        self._task: asyncio.Task[None] | None = None

    def key(self, token_id: int | None) -> str:
        """The hash of a key's slots; empty when there is no cluster-wide cap."""
        if self.cap <= 0 or token_id is None:
            return ""
        return f"{self._ns}:slots:{token_id}"

    def start(self) -> None:
        if self.cap > 0:
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="key-slots-alive")

    async def _beat(self) -> None:
        down = False
        while True:
            try:
                await self._redis.set(self.alive_prefix + self.me, 1, px=_ALIVE_MS)
                down = False
            except (RedisError, OSError) as exc:
                if not down:
                    log.warning("could not mark this process alive in Redis: %s", exc)
                down = True
            await asyncio.sleep(_BEAT)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self.alive_prefix + self.me)  # our fields are free at once
