"""The bank for several processes when Redis is configured (`AITRE_REDIS_URL`): live balances in
Redis, checked and taken by one Lua script, so processes and instances share them exactly.

The database stays the record: every operation goes to the books (journaled, written in
batches, `users.quota == SUM(ledger)`), and Redis is loaded from it on first use of a balance.
Changes made outside a request (top-ups, redeem codes, a key's new quota) are applied to Redis
after they commit (`apply_external`), and so are refunds made by recovery (`absorb`). A
settlement is capped at what was reserved, as in every bank (`holds.capped`).

Redis going away: reservations and rate checks get 503 `billing_unavailable` (nothing charged),
give-backs wait in memory and are sent again, and service resumes by itself when Redis answers.
Redis coming back *empty*: balances load again from the database after a short pause, and
give-backs owed from before are dropped, since the database has them (`redis_reseed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.bank import Hold, billing_unavailable, credit_op, hold_op, insufficient
from aitre.billing.books import Books
from aitre.billing.holds import books_backlogged, capped, check_durable, commit_durable, end_by_id
from aitre.billing.recovery import undo
from aitre.billing.redis_reseed import Generation, Restoring
from aitre.billing.redis_slots import KeySlots
from aitre.errors import ApiError
from aitre.store.models import Token, User

log = logging.getLogger(__name__)

# KEYS: user balance, key balance (or ""), the key's slots (or "": no cap across instances).
# ARGV: amount, slot cap, this process's field, the alive-mark prefix. A key balance "U" means
# unlimited. Returns {1, key_limited}, {-1, balance}, {-2, key_balance}, {-3} user not loaded,
# {-4} key not loaded, {-5, in flight} the key's slots are all taken (see `redis_slots`).
_RESERVE = """
local a = tonumber(ARGV[1])
local u = redis.call('GET', KEYS[1])
if not u then return {-3} end
local t = false
if KEYS[2] ~= '' then
  t = redis.call('GET', KEYS[2])
  if not t then return {-4} end
end
if KEYS[3] ~= '' then
  local all = redis.call('HGETALL', KEYS[3])
  local open = 0
  for i = 1, #all, 2 do
    if all[i] == ARGV[3] or redis.call('EXISTS', ARGV[4] .. all[i]) == 1 then
      open = open + tonumber(all[i + 1])
    else
      redis.call('HDEL', KEYS[3], all[i])
    end
  end
  if open >= tonumber(ARGV[2]) then return {-5, open} end
end
u = tonumber(u)
if u < a then return {-1, u} end
local limited = t and t ~= 'U'
if limited and tonumber(t) < a then return {-2, tonumber(t)} end
redis.call('DECRBY', KEYS[1], a)
if KEYS[3] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('PEXPIRE', KEYS[3], 86400000)
end
if limited then redis.call('DECRBY', KEYS[2], a); return {1, 1} end
return {1, 0}
"""


_ADD_IF_LOADED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
"""

# KEYS: balances; ARGV: what to add to each. A balance not loaded (the next load reads the
# database, which has the change) or unlimited ("U") is left alone.
_ADD_ALL = """
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v and v ~= 'U' then redis.call('INCRBY', key, ARGV[i]) end
end
return #KEYS
"""


def namespace(database_url: str) -> str:
    """Keys per database, so deployments sharing a Redis never mix balances."""
    return "aitre:" + hashlib.sha1(database_url.encode()).hexdigest()[:10]


class RedisBalances:
    """The Redis side of the balances, usable without a running gateway (CLI, recovery)."""

    def __init__(
        self, url: str, database_url: str, max_connections: int = 64, reseed_seconds: float = 3.0
    ) -> None:
        # A bounded pool that makes callers wait: redis-py's default pool raises "Too many
        # connections" past 100, which under load failed reservations and lost give-backs.
        # A Redis that does not accept a connection is known at once, not after 20 s.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max(1, max_connections), timeout=20, socket_connect_timeout=2
        )
        self.redis: Redis = Redis.from_pool(pool)
        self.ns = namespace(database_url)
        self.generation = Generation(self.redis, self.ns, reseed_seconds)

    def user_key(self, user_id: int) -> str:
        return f"{self.ns}:u:{user_id}"

    def token_key(self, token_id: int) -> str:
        return f"{self.ns}:t:{token_id}"

    def changes(self, changes: list[dict[str, Any]]) -> dict[str, int]:
        """The Redis keys and amounts for balance changes (`user_id`, `amount`, and for a key
        with its own quota `token_id`, `token_amount`)."""
        out: dict[str, int] = {}
        for c in changes:
            key = self.user_key(c["user_id"])
            out[key] = out.get(key, 0) + int(c["amount"])
            if c.get("token_id") is not None and c.get("token_amount"):
                key = self.token_key(c["token_id"])
                out[key] = out.get(key, 0) + int(c["token_amount"])
        return {k: v for k, v in out.items() if v}

    async def add(self, amounts: dict[str, int]) -> None:
        """Add to loaded balances, in one round trip."""
        if amounts:
            await self.redis.eval(_ADD_ALL, len(amounts), *amounts.keys(), *amounts.values())

    async def add_to_user(self, user_id: int, amount: int) -> None:
        """A committed change to a balance: apply it if the balance is loaded (else the next
        load reads it from the database)."""
        await self.redis.eval(_ADD_IF_LOADED, 1, self.user_key(user_id), amount)

    async def forget_token(self, token_id: int) -> None:
        await self.redis.delete(self.token_key(token_id))

    async def apply_external(self, info: dict[str, Any]) -> None:
        """Apply what a committed transaction recorded in `session.info` (see `accounts.repo`)."""
        for user_id, amount in info.get("balance_changes", []):
            await self.add_to_user(user_id, amount)
        for token_id in info.get("token_changes", []):
            await self.forget_token(token_id)

    async def close(self) -> None:
        await self.redis.aclose()


class RedisBank:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        books: Books,
        balances: RedisBalances,
        key_max_inflight: int = 0,
    ) -> None:
        self._sessions = sessions
        self._books = books
        self.balances = balances
        self._script = balances.redis.register_script(_RESERVE)
        self._gen = balances.generation
        self.slots = KeySlots(balances.redis, balances.ns, key_max_inflight)
        self._open: dict[str, Hold] = {}
        self._slotted: dict[str, str] = {}  # hold id -> the slots hash it took a slot in
        self._owed: dict[str, int] = {}  # Redis balance key -> units owed to it (or, negative, by it)
        self._freed: dict[str, int] = {}  # slots hash -> slots to give back
        self._giving: asyncio.Task[None] | None = None
        books.on_unwritten = self._take_back

    async def prepare(self, others_alive: bool) -> None:
        """On start, before anything is owed: learn Redis' generation (see `redis_reseed`)."""
        self.slots.start()
        try:
            await self._gen.ensure(others_alive)
        except RedisError as exc:
            log.warning("Redis does not answer at start (requests get 503 until it does): %s", exc)

    async def _load(self, key: str, value: int | str) -> None:
        try:
            if await self._gen.load(key, value):
                self._drop_owed()
        except Restoring as pause:
            wait = max(1, -(-pause.ms_left // 1000))
            error = billing_unavailable("Balances are being restored after Redis lost them; retry shortly.")
            error.headers["retry-after"] = str(wait)
            raise error from None

    async def _load_user(self, user_id: int) -> None:
        async with self._sessions() as session:
            quota = await session.scalar(select(User.quota).where(User.id == user_id))
        await self._load(self.balances.user_key(user_id), int(quota or 0))

    async def _load_token(self, token_id: int) -> None:
        async with self._sessions() as session:
            row = (
                await session.execute(select(Token.remain_quota, Token.unlimited).where(Token.id == token_id))
            ).first()
        value: int | str = "U" if row is None or row[1] else int(row[0])
        await self._load(self.balances.token_key(token_id), value)

    def _drop_owed(self, refused: int = 0) -> None:
        """Redis was reset: what was owed to the balances it lost (and the `refused` units it
        just turned away) is in the database, which the balances load from again."""
        dropped = refused + sum(self._owed.values())
        self._owed = {}
        if dropped:
            log.warning("Redis was reset: %d units owed to it are dropped (the database has them)", dropped)

    async def reserve(self, hold: Hold) -> None:
        if self._books.full():
            raise books_backlogged()
        # A task's hold (durable) is not a request in flight: it takes no slot.
        slots = "" if hold.durable else self.slots.key(hold.token_id)
        keys = [
            self.balances.user_key(hold.user_id),
            self.balances.token_key(hold.token_id) if hold.token_id else "",
            slots,
        ]
        args: list[str | int] = [hold.amount, self.slots.cap, self.slots.me, self.slots.alive_prefix]
        for _ in range(4):
            try:
                result = await self._script(keys=keys, args=args)
            except (RedisError, OSError) as exc:
                log.warning("reserving in Redis failed: %s", exc)
                raise billing_unavailable() from None
            code = int(result[0])
            if code == 1:
                hold.token_limited = bool(int(result[1]))
                self._open[hold.hold_id] = hold
                if slots:
                    self._slotted[hold.hold_id] = slots
                self._books.ledger(hold_op(hold, "reserve", -hold.amount), now=False)
                return
            if code == -1:
                raise insufficient(
                    f"Insufficient balance: the request needs up to {hold.amount} units, the account has "
                    f"{int(result[1])}."
                )
            if code == -2:
                raise insufficient(
                    f"This API key's quota is used up: the request needs up to {hold.amount} units, the key "
                    f"has {int(result[1])} left."
                )
            if code == -5:
                raise ApiError(
                    429,
                    f"This API key already has {self.slots.cap} requests in flight; wait for one to finish.",
                    type="requests",
                    code="too_many_concurrent_requests",
                    headers={"retry-after": "1"},
                )
            try:
                if code == -3:
                    await self._load_user(hold.user_id)
                elif code == -4 and hold.token_id is not None:
                    await self._load_token(hold.token_id)
            except (RedisError, OSError) as exc:
                log.warning("loading a balance into Redis failed: %s", exc)
                raise billing_unavailable() from None
        raise RuntimeError("could not load balances into Redis")

    def _give_back(self, hold: Hold, amount: int) -> None:
        """Return the unused part of a reservation to Redis: owed at once, sent with the others
        of this loop turn in one round trip, and sent again until Redis has taken it."""
        if amount <= 0:
            return
        owed = self._owed
        key = self.balances.user_key(hold.user_id)
        owed[key] = owed.get(key, 0) + amount
        if hold.token_limited and hold.token_id is not None:
            key = self.balances.token_key(hold.token_id)
            owed[key] = owed.get(key, 0) + amount
        if self._giving is None or self._giving.done():
            self._giving = asyncio.get_running_loop().create_task(self._give())

    def _free_slot(self, hold_id: str) -> None:
        slots = self._slotted.pop(hold_id, None)
        if slots is None:
            return
        self._freed[slots] = self._freed.get(slots, 0) + 1
        if self._giving is None or self._giving.done():
            self._giving = asyncio.get_running_loop().create_task(self._give())

    def _owe(self, amounts: dict[str, int]) -> None:
        for key, amount in amounts.items():
            self._owed[key] = self._owed.get(key, 0) + amount
        if amounts and (self._giving is None or self._giving.done()):
            self._giving = asyncio.get_running_loop().create_task(self._give())

    async def _give(self) -> None:
        await asyncio.sleep(0)  # let this loop turn's other settlements join the batch
        failing = False
        while self._owed or self._freed:
            batch, self._owed = self._owed, {}
            freed, self._freed = self._freed, {}
            batch = {k: v for k, v in batch.items() if v}
            if not batch and not freed:
                continue
            try:
                if not self._gen.current:
                    await self._gen.ensure(others_alive=True)
                if not await self._gen.give(self._gen.current, batch, self.slots.me, freed):
                    self._drop_owed(refused=sum(batch.values()))
                if failing:
                    log.warning("Redis takes give-backs again")
                failing = False
            except Exception as exc:
                for key, amount in batch.items():
                    self._owed[key] = self._owed.get(key, 0) + amount
                for key, count in freed.items():
                    self._freed[key] = self._freed.get(key, 0) + count
                if not failing:  # once per outage, not once a second
                    log.warning(
                        "returning %d units to Redis failed (%s); trying again every second",
                        sum(batch.values()),
                        exc,
                    )
                failing = True
                await asyncio.sleep(1.0)

    def settle(self, hold: Hold, actual: int) -> int:
        if self._open.pop(hold.hold_id, None) is None:
            return 0
        charge, note = (actual, "") if 0 <= actual <= hold.amount else capped(hold.amount, actual)
        self._books.ledger(hold_op(hold, "settle", hold.amount - charge, used=charge, note=note), now=True)
        self._free_slot(hold.hold_id)
        self._give_back(hold, hold.amount - charge)
        return charge

    def refund(self, hold: Hold, note: str = "") -> None:
        if self._open.pop(hold.hold_id, None) is None:
            return
        self._books.ledger(hold_op(hold, "refund", hold.amount, note=note), now=True)
        self._free_slot(hold.hold_id)
        self._give_back(hold, hold.amount)

    # --- holds that outlive the process ---------------------------------------------------------
    async def reserve_durable(self, hold: Hold) -> None:
        check_durable(hold)
        await self.reserve(hold)
        self._open.pop(hold.hold_id, None)
        if not await commit_durable(self._books, self._sessions, hold.hold_id):
            self._books.ledger(
                hold_op(hold, "refund", hold.amount, note="the reservation could not be written"), now=True
            )
            self._give_back(hold, hold.amount)
            raise billing_unavailable("The reservation could not be written to the database; retry shortly.")

    async def settle_by_id(self, hold_id: str, actual: int) -> int:
        hold = self._open.get(hold_id)
        if hold is not None:
            return self.settle(hold, actual)
        op = await end_by_id(self._sessions, self._books, hold_id, actual, "", self._mirror)
        return int(op["used"]) if op else 0

    async def refund_by_id(self, hold_id: str, note: str = "") -> bool:
        hold = self._open.get(hold_id)
        if hold is not None:
            self.refund(hold, note)
            return True
        return await end_by_id(self._sessions, self._books, hold_id, None, note, self._mirror) is not None

    def _mirror(self, op: dict[str, Any]) -> None:
        self._owe(self.balances.changes([op]))

    def absorb(self, changes: list[dict[str, Any]]) -> None:
        """Refunds made by recovery, and operations the database did not take, reach the
        balances in Redis (owed until Redis has taken them)."""
        self._owe(self.balances.changes(changes))

    def _take_back(self, ops: list[dict[str, Any]]) -> None:
        """Operations the database did not take (an ending whose hold was refunded meanwhile, a
        refused row): what they gave back to Redis is taken again."""
        self._owe(self.balances.changes([undo(op) for op in ops]))

    async def credit(self, user_id: int, amount: int, kind: str, hold_id: str, note: str = "") -> None:
        self._books.ledger(credit_op(user_id, amount, kind, hold_id, note), now=True)
        await self.balances.add_to_user(user_id, amount)

    async def balance(self, user_id: int) -> int:
        try:
            value = await self.balances.redis.get(self.balances.user_key(user_id))
            if value is None:
                await self._load_user(user_id)
                value = await self.balances.redis.get(self.balances.user_key(user_id))
        except (RedisError, OSError) as exc:
            log.warning("reading a balance in Redis failed: %s", exc)
            raise billing_unavailable() from None
        return int(value or 0)

    async def token_remaining(self, token_id: int) -> int | None:
        try:
            value = await self.balances.redis.get(self.balances.token_key(token_id))
            if value is None:
                await self._load_token(token_id)
                value = await self.balances.redis.get(self.balances.token_key(token_id))
        except (RedisError, OSError) as exc:
            log.warning("reading a key's quota in Redis failed: %s", exc)
            raise billing_unavailable() from None
        return None if value in (None, b"U") else int(value)

    async def reload(self) -> None:
        """Changes made elsewhere reach Redis through `apply_external`, when they commit."""

    async def flush(self) -> None:
        await self._books.flush()

    async def apply_external(self, info: dict[str, Any]) -> None:
        await self.balances.apply_external(info)

    def open_holds(self) -> int:
        return len(self._open)

    async def close(self) -> None:
        await self.slots.stop()
        if (self._owed or self._freed) and (self._giving is None or self._giving.done()):
            self._giving = asyncio.get_running_loop().create_task(self._give())
        if self._giving is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._giving), 10)
            except TimeoutError:
                log.error("Redis did not take back %d units before shutdown", sum(self._owed.values()))
                self._giving.cancel()
        await self.balances.close()
