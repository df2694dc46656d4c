"""Per-key RPM and TPM limits shared by every process and instance through Redis.

The same sliding 60-second window as `limits.RateLimiter`, kept in two sorted sets per key
(requests; token amounts) and checked-and-counted by one Lua script on Redis' own clock, so
processes on different machines agree on what the window holds.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from aitre.billing.bank import billing_unavailable

log = logging.getLogger(__name__)

# KEYS: requests zset, tokens zset. ARGV: rpm, tpm, tokens, member.
# Token members are "<member>|<tokens>" (corrections add "<member>|c|<delta>").
# Returns -1 when admitted, else the milliseconds until the window has room.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
if rpm > 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(first[2]) + 60000 - now
end
if tpm > 0 then
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], '(-?%d+)$'))
  end
  if #entries > 0 and used + tokens > tpm then
    return tonumber(entries[2]) + 60000 - now
  end
  redis.call('ZADD', KEYS[2], now, ARGV[4] .. '|' .. tokens)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 61000)
return -1
"""

_CORRECT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 61000)
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._ns = namespace
        self._admit = redis.register_script(_ADMIT)
        self._correct = redis.register_script(_CORRECT)
        self._tasks: set[asyncio.Task[None]] = set()

    def _keys(self, key: int) -> list[str]:
        return [f"{self._ns}:rl:{key}:r", f"{self._ns}:rl:{key}:t"]

    async def admit(self, key: int, rpm: int, tpm: int, tokens: int, request_id: str) -> float | None:
        if rpm <= 0 and tpm <= 0:
            return None
        try:
            wait_ms = int(await self._admit(keys=self._keys(key), args=[rpm, tpm, tokens, request_id]))
        except RedisError as exc:
            log.warning("checking a rate window in Redis failed: %s", exc)
            raise billing_unavailable() from None
        return None if wait_ms < 0 else max(1.0, float(-(-wait_ms // 1000)))

    def correct(self, key: int, estimated: int, actual: int, request_id: str) -> None:
        if estimated == actual:
            return
        member = f"{request_id}|c|{actual - estimated}"
        tokens_key = self._keys(key)[1]

        async def send() -> None:
            try:
                await self._correct(keys=[tokens_key], args=[member])
            except Exception:  # a lost correction only makes the window stricter for a minute
                log.exception("correcting the token window of key %d failed", key)

        # Settlement is synchronous (it runs as the last byte goes out); Redis is told soon after.
        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
