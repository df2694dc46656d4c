"""When Redis loses the balances (restarted without persistence, failed over to an empty replica,
flushed), they are loaded again from the database, which stays the record. Two things could
make those loads wrong, and a *generation* guards against both:

- Ledger operations still on their way to the database (journaled, written within
  `AITRE_FLUSH_SECONDS`) would be missing from a balance loaded at once. So a new generation
  starts with a pause (`AITRE_REDIS_RESEED_SECONDS`) in which no balance is loaded (requests get
  503 `billing_unavailable`), long enough for every instance's books to reach the database.
- Unused parts of reservations that an instance still owes Redis (it could not give them back
  while Redis was away) are in the database already; given back on top of a reloaded balance,
  they would count twice. So every give-back names the generation it was owed under, and Redis
  refuses those of an older one: the instance drops them.

The generation is one key: `<id>:<unix ms from which balances may load>`; a missing key means
Redis lost everything (or never had anything: on a first start with no other instance alive,
there is nothing to wait for).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

# KEYS: generation. ARGV: new id, pause ms. The current generation, made if missing.
_ENSURE = """
local g = redis.call('GET', KEYS[1])
if g then return g end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
g = ARGV[1] .. ':' .. (now + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], g)
return g
"""

# KEYS: generation, balance. ARGV: value, new id, pause ms.
# Returns {1, generation} when loaded (or already there), {0, generation, ms left} while paused.
_LOAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local g = redis.call('GET', KEYS[1])
if not g then
  g = ARGV[2] .. ':' .. (now + tonumber(ARGV[3]))
  redis.call('SET', KEYS[1], g)
end
local from = tonumber(string.match(g, ':(%d+)$')) or 0
if now < from then return {0, g, from - now} end
redis.call('SET', KEYS[2], ARGV[1], 'NX')
return {1, g}
"""

# KEYS: generation, N balances, then keys' slot hashes (`redis_slots`). ARGV: the generation
# owed under, N, the N amounts, this process's field, the slots freed in each hash. Slots are
# given back whatever the generation (never below zero). A balance not loaded (its next load
# reads the database, which has the change) or unlimited ("U") is left alone. Returns {1} when
# the amounts were applied, {0, current generation} when Redis was reset since they were owed.
_GIVE = """
local n = tonumber(ARGV[2])
local me = ARGV[n + 3]
for i = n + 2, #KEYS do
  if redis.call('HINCRBY', KEYS[i], me, -tonumber(ARGV[i + 2])) <= 0 then redis.call('HDEL', KEYS[i], me) end
end
local g = redis.call('GET', KEYS[1])
if g ~= ARGV[1] then return {0, g or ''} end
for i = 2, n + 1 do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= 'U' then redis.call('INCRBY', KEYS[i], ARGV[i + 1]) end
end
return {1}
"""


class Restoring(Exception):
    """Balances are not loadable yet: Redis was reset moments ago."""

    def __init__(self, ms_left: int) -> None:
        super().__init__(f"balances load again in {ms_left} ms")
        self.ms_left = ms_left


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Generation:
    def __init__(self, redis: Redis, namespace: str, pause_seconds: float) -> None:
        self.key = f"{namespace}:gen"
        self.pause_ms = max(0, int(pause_seconds * 1000))
        self.current = ""  # unknown until Redis has been asked
        self._ensure = redis.register_script(_ENSURE)
        self._load = redis.register_script(_LOAD)
        self._give = redis.register_script(_GIVE)

    async def ensure(self, others_alive: bool) -> str:
        """On start: the current generation, made if Redis has none. A start with no other
        instance alive has nobody's books to wait for: its balances load at once."""
        pause = self.pause_ms if others_alive else 0
        self.current = _text(await self._ensure(keys=[self.key], args=[_new_id(), pause]))
        return self.current

    async def load(self, balance_key: str, value: int | str) -> bool:
        """Load a balance read from the database (unless one is there); raises `Restoring` in a
        new generation's pause. True when the generation changed (what was owed is void)."""
        result = await self._load(keys=[self.key, balance_key], args=[value, _new_id(), self.pause_ms])
        changed = self._learn(_text(result[1]))
        if int(result[0]) == 0:
            raise Restoring(int(result[2]))
        return changed

    async def give(
        self, generation: str, amounts: dict[str, int], me: str = "", freed: dict[str, int] | None = None
    ) -> bool:
        """Add `amounts` owed under `generation` to the loaded balances; False (and nothing
        added) when Redis was reset since. `freed`: slots to give back in `me`'s fields."""
        freed = freed or {}
        keys = [self.key, *amounts, *freed]
        args: list[str | int] = [generation, len(amounts), *amounts.values(), me, *freed.values()]
        result = await self._give(keys=keys, args=args)
        if int(result[0]) == 1:
            return True
        if result[1]:  # empty: reset, and no balance loaded again yet (none to add to)
            self._learn(_text(result[1]))
        return False

    def _learn(self, generation: str) -> bool:
        """Take `generation` as the current one; True when it replaces a known other one."""
        previous, self.current = self.current, generation
        if previous in ("", generation):
            return False
        log.warning(
            "Redis lost the balances (generation %s, now %s): they load again from the database",
            previous,
            generation,
        )
        return True


def _new_id() -> str:
    return secrets.token_hex(6)
