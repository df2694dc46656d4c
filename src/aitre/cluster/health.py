"""Channel cooldowns shared by every instance: when one instance's breaker trips (or an upstream
tells it to back off), the others route around the channel too, for the same time.

Only the decisions travel, never the request counts: a trip is rare, a request is not, so
nothing here touches Redis on the request path. A cooldown is kept in one Redis hash (its end
on Redis' clock, so instances whose clocks disagree still agree on it) and announced on the
bus; an instance that (re)connects reads the hash, so a trip announced while it was away still
reaches it. A reset (the prober found the channel answering, or an operator reset it) is shared
the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import orjson
from redis.exceptions import RedisError

from aitre.channels.health import ChannelHealth
from aitre.cluster.bus import Bus

log = logging.getLogger(__name__)

TOPIC = "health"

# KEYS: the hash, the bus channel. ARGV: channel id, milliseconds, trips, error, message.
# Keeps the later end when two instances trip together; returns 1 when it announced.
_COOL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = now + tonumber(ARGV[2])
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(cjson.decode(current)['u']) >= ends then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({u = ends, t = tonumber(ARGV[3]), e = ARGV[4]}))
redis.call('PUBLISH', KEYS[2], ARGV[5])
return 1
"""

# KEYS: the hash. Returns [channel id, milliseconds left, trips, error, ...] of the cooldowns
# still running, and drops the ended ones.
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local c = cjson.decode(all[i + 1])
  local left = tonumber(c['u']) - now
  if left > 0 then
    table.insert(out, all[i]); table.insert(out, left); table.insert(out, c['t']); table.insert(out, c['e'])
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
"""


class SharedHealth:
    def __init__(self, health: ChannelHealth, bus: Bus) -> None:
        self._health = health
        self._bus = bus
        self._key = f"{bus.ns}:cooling"
        self._cool = bus.redis.register_script(_COOL)
        self._read = bus.redis.register_script(_READ)
        self._tasks: set[asyncio.Task[None]] = set()
        health.on_cool = self._cooled_here
        health.on_reset = self._reset_here
        bus.subscribe(TOPIC, self._received)
        bus.on_connect(self.catch_up)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # The breaker decides on the request path (synchronously); Redis is told right after.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cooled_here(self, channel_id: int, seconds: float, trips: int, error: str) -> None:
        self._spawn(self._announce_cool(channel_id, seconds, trips, error))

    def _reset_here(self, channel_id: int) -> None:
        self._spawn(self._announce_reset(channel_id))

    async def _announce_cool(self, channel_id: int, seconds: float, trips: int, error: str) -> None:
        ms = max(1, int(seconds * 1000))
        message = {"op": "cool", "ch": channel_id, "ms": ms, "trips": trips, "error": error[:300]}
        payload = orjson.dumps({**message, "from": self._bus.sender})
        try:
            await self._cool(
                keys=[self._key, self._bus.channel(TOPIC)],
                args=[channel_id, ms, trips, error[:300], payload],
            )
        except (RedisError, OSError) as exc:
            log.warning("could not share the cooldown of channel %s: %s", channel_id, exc)

    async def _announce_reset(self, channel_id: int) -> None:
        try:
            await self._bus.redis.hdel(self._key, str(channel_id))
        except (RedisError, OSError) as exc:
            log.warning("could not share the reset of channel %s: %s", channel_id, exc)
            return
        await self._bus.publish(TOPIC, {"op": "reset", "ch": channel_id})

    async def _received(self, message: dict[str, Any]) -> None:
        channel_id = message.get("ch")
        if not isinstance(channel_id, int):
            return
        if message.get("op") == "cool":
            ms, trips = message.get("ms"), message.get("trips")
            if isinstance(ms, int) and isinstance(trips, int):
                self._health.cool_remote(channel_id, ms / 1000, trips, str(message.get("error", "")))
        elif message.get("op") == "reset":
            self._health.reset_remote(channel_id)

    async def catch_up(self) -> None:
        """Apply the cooldowns still running (on start, and after Redis was away)."""
        found = await self._read(keys=[self._key])
        for i in range(0, len(found), 4):
            channel, left, trips, error = found[i : i + 4]
            self._health.cool_remote(int(channel), int(left) / 1000, int(trips), _text(error))

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
