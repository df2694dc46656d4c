"""The bank: reserve before the upstream call, settle to the real cost after, refund on failure.

This is the single-process bank (the default: one worker, SQLite). Balances live in memory, so
the check-and-take of a reservation is atomic on the event loop: 200 requests racing on one key
can never take more than is there. Every operation goes to the books (`books.py`): journaled at
once, written to the database in batches with the balance columns updated in the same
transaction as the ledger rows, so `users.quota == SUM(ledger.amount)` holds in the database
after every commit; on start, what a dead process left is replayed and its open reservations
refunded (`recovery.py`).

A request never costs more than its reservation (`holds.capped`), in every bank.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.books import Books
from aitre.billing.holds import billing_unavailable as billing_unavailable  # re-exported
from aitre.billing.holds import (
    books_backlogged,
    capped,
    check_durable,
    commit_durable,
    end_by_id,
)
from aitre.errors import ApiError
from aitre.store.models import Token, User, now_ms


@dataclass(slots=True)
class Hold:
    hold_id: str
    user_id: int
    token_id: int | None
    amount: int
    token_limited: bool = False
    durable: bool = False


class Bank(Protocol):
    """Reserve before the call, settle or refund after; balances for the APIs."""

    async def reserve(self, hold: Hold) -> None: ...

    def settle(self, hold: Hold, actual: int) -> int:
        """End a request's hold at its real cost (at most what it reserved); returns what was
        charged. Only the process that reserved it ends it this way."""
        ...

    def refund(self, hold: Hold, note: str = "") -> None: ...

    async def reserve_durable(self, hold: Hold) -> None:
        """Reserve a hold that outlives this process (a task's): its reserve row is in the
        database when this returns, no instance owns it, and it ends only by id."""
        ...

    async def settle_by_id(self, hold_id: str, actual: int) -> int:
        """End any open hold at its real cost (at most what it reserved), from any process, after
        any restart; returns what was charged (0 when it was not open: nothing changes)."""
        ...

    async def refund_by_id(self, hold_id: str, note: str = "") -> bool:
        """Refund any open hold, from any process; False when it was not open."""
        ...

    def absorb(self, changes: list[dict[str, Any]]) -> None:
        """Balance changes the database took outside this bank's own operations (refunds made by
        recovery) or did not take (operations dropped or refused): make the live balances agree."""
        ...

    async def credit(self, user_id: int, amount: int, kind: str, hold_id: str, note: str = "") -> None: ...

    async def balance(self, user_id: int) -> int: ...

    async def token_remaining(self, token_id: int) -> int | None: ...

    async def reload(self) -> None: ...

    async def apply_external(self, info: dict[str, Any]) -> None:
        """Changes committed outside a request (top-ups, a key's new quota), as recorded in
        the transaction's `session.info`."""
        ...

    async def flush(self) -> None: ...

    def open_holds(self) -> int: ...


def hold_op(hold: Hold, kind: str, amount: int, used: int = 0, note: str = "") -> dict[str, Any]:
    """A ledger operation on a request's hold (`reserve`, `settle`, `refund`), as journaled."""
    op = {
        "op": kind,
        "hold_id": hold.hold_id,
        "user_id": hold.user_id,
        "token_id": hold.token_id,
        "amount": amount,
        "token_amount": amount if hold.token_limited else 0,
        "used": used,
        "count": 1 if kind == "settle" else 0,
        "note": note,
        "ts": now_ms(),
    }
    if hold.durable:
        op["durable"] = True
    return op


def credit_op(user_id: int, amount: int, kind: str, hold_id: str, note: str) -> dict[str, Any]:
    """A ledger operation outside a request (top-up, redeem code, adjustment)."""
    return {
        "op": kind,
        "hold_id": hold_id,
        "user_id": user_id,
        "token_id": None,
        "amount": amount,
        "token_amount": 0,
        "used": 0,
        "count": 0,
        "note": note,
        "ts": now_ms(),
    }


def insufficient(message: str) -> ApiError:
    return ApiError(402, message, type="insufficient_quota", code="insufficient_quota")


@dataclass(slots=True)
class _TokenAccount:
    remain: int
    unlimited: bool


class LocalBank:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        books: Books,
    ) -> None:
        self._sessions = sessions
        self._books = books
        self._balances: dict[int, int] = {}
        self._tokens: dict[int, _TokenAccount] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._open: dict[str, Hold] = {}
        books.on_unwritten = self.absorb

    # --- balances ------------------------------------------------------------------------------
    async def _ensure_loaded(self, user_id: int, token_id: int | None) -> None:
        # A `reload` may drop the caches while we await a load: loop until both are present at
        # once; the caller then uses them without awaiting in between.
        while user_id not in self._balances or (token_id is not None and token_id not in self._tokens):
            if user_id not in self._balances:
                await self._load_once(("user", user_id), self._load_user(user_id))
            if token_id is not None and token_id not in self._tokens:
                await self._load_once(("token", token_id), self._load_token(token_id))

    async def _load_once(self, key: tuple[str, int], loader: Any) -> None:
        """One database read per account, however many requests arrive for it at once."""
        pending = self._loading.get(key)
        if pending is not None:
            loader.close()
            await pending
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            await loader
            fut.set_result(None)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[key]

    # Loads hold the flush lock: a flush between the read and adding the unflushed operations
    # would otherwise count those operations twice or not at all.
    async def _load_user(self, user_id: int) -> None:
        async with self._books.lock:
            async with self._sessions() as session:
                quota = await session.scalar(select(User.quota).where(User.id == user_id))
            if user_id not in self._balances:
                self._balances[user_id] = int(quota or 0) + self._pending_delta("user_id", user_id, "amount")

    async def _load_token(self, token_id: int) -> None:
        async with self._books.lock:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(Token.remain_quota, Token.unlimited).where(Token.id == token_id)
                    )
                ).first()
            if token_id not in self._tokens:
                remain, unlimited = (int(row[0]), bool(row[1])) if row else (0, True)
                remain += self._pending_delta("token_id", token_id, "token_amount")
                self._tokens[token_id] = _TokenAccount(remain, unlimited)

    def _pending_delta(self, field: str, ident: int, amount_field: str) -> int:
        return sum(int(op[amount_field]) for op in self._books.ops if op.get(field) == ident)

    async def balance(self, user_id: int) -> int:
        await self._ensure_loaded(user_id, None)
        return self._balances[user_id]

    async def token_remaining(self, token_id: int) -> int | None:
        """Remaining quota of a key, or None when the key is unlimited."""
        if token_id not in self._tokens:
            await self._load_once(("token", token_id), self._load_token(token_id))
        acct = self._tokens[token_id]
        return None if acct.unlimited else acct.remain

    async def reload(self) -> None:
        """Forget cached balances (the database changed under us, e.g. a CLI top-up)."""
        async with self._books.lock:
            await self._books.flush_locked()
            self._balances.clear()
            self._tokens.clear()

    # --- the three operations ------------------------------------------------------------------
    async def reserve(self, hold: Hold) -> None:
        if self._books.full():
            raise books_backlogged()
        await self._ensure_loaded(hold.user_id, hold.token_id)
        # From here to the end: no await, so the check and the take are one atomic step.
        balance = self._balances[hold.user_id]
        if balance < hold.amount:
            raise insufficient(
                f"Insufficient balance: the request needs up to {hold.amount} units, the account has "
                f"{balance}."
            )
        acct = self._tokens.get(hold.token_id) if hold.token_id is not None else None
        hold.token_limited = acct is not None and not acct.unlimited
        if acct is not None and hold.token_limited and acct.remain < hold.amount:
            raise insufficient(
                f"This API key's quota is used up: the request needs up to {hold.amount} units, "
                f"the key has {acct.remain} left."
            )
        self._balances[hold.user_id] = balance - hold.amount
        if acct is not None and hold.token_limited:
            acct.remain -= hold.amount
        self._open[hold.hold_id] = hold
        self._record(hold, "reserve", -hold.amount)

    def settle(self, hold: Hold, actual: int) -> int:
        """End a hold at its real cost; returns what was charged (never more than reserved)."""
        if self._open.pop(hold.hold_id, None) is None:
            return 0
        charge, note = capped(hold.amount, actual)
        self._adjust(hold, hold.amount - charge)
        self._record(hold, "settle", hold.amount - charge, used=charge, note=note)
        return charge

    def refund(self, hold: Hold, note: str = "") -> None:
        if self._open.pop(hold.hold_id, None) is None:
            return
        self._adjust(hold, hold.amount)
        self._record(hold, "refund", hold.amount, note=note)

    def _adjust(self, hold: Hold, delta: int) -> None:
        if hold.user_id in self._balances:
            self._balances[hold.user_id] += delta
        acct = self._tokens.get(hold.token_id) if hold.token_id is not None else None
        if acct is not None and hold.token_limited:
            acct.remain += delta

    # --- holds that outlive the process ---------------------------------------------------------
    async def reserve_durable(self, hold: Hold) -> None:
        check_durable(hold)
        await self.reserve(hold)
        self._open.pop(hold.hold_id, None)
        if not await commit_durable(self._books, self._sessions, hold.hold_id):
            # Taken back in memory and in the books (both rows get written once the database is back).
            self._adjust(hold, hold.amount)
            self._record(hold, "refund", hold.amount, note="the reservation could not be written")
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
        """An operation written straight to the database: the cached balances move with it."""
        if op["user_id"] in self._balances:
            self._balances[op["user_id"]] += op["amount"]
        acct = self._tokens.get(op["token_id"]) if op.get("token_id") is not None else None
        if acct is not None and not acct.unlimited:
            acct.remain += op["token_amount"]

    def absorb(self, changes: list[dict[str, Any]]) -> None:
        # Reloaded on next use (the database, plus what this process has not written yet): exact
        # whether the change was made by this process or another.
        for change in changes:
            self._balances.pop(change["user_id"], None)
            if change.get("token_id") is not None:
                self._tokens.pop(change["token_id"], None)

    async def credit(self, user_id: int, amount: int, kind: str, hold_id: str, note: str = "") -> None:
        """Add (or, negative, remove) quota outside a request: top-ups, redeem codes, adjustments."""
        await self._ensure_loaded(user_id, None)
        if self._balances[user_id] + amount < 0:
            raise ApiError(400, "That would make the balance negative.", code="negative_balance")
        self._balances[user_id] += amount
        self._books.ledger(credit_op(user_id, amount, kind, hold_id, note), now=True)

    def _record(self, hold: Hold, kind: str, amount: int, used: int = 0, note: str = "") -> None:
        # A reservation goes to disk with the next write (nothing was delivered yet, and the
        # balance it took lives only in this process); the end of a request is written at
        # once, before its answer leaves.
        reserve = kind == "reserve"
        self._books.ledger(hold_op(hold, kind, amount, used, note), now=not reserve, lazy=reserve)

    async def flush(self) -> None:
        await self._books.flush()

    async def apply_external(self, info: dict[str, Any]) -> None:
        """Nothing to do: the catalog version moves with such changes, and `reload` follows."""

    def open_holds(self) -> int:
        return len(self._open)
