"""The bank: reserve before the upstream call, settle to the real cost after, refund on failure.

This is the single-process bank (the default: one worker, SQLite). Balances live in memory, so
the check-and-take of a reservation is atomic on the event loop: 200 requests racing on one key
can never take more than is there. Every operation is journaled at once (`journal.py`) and
written to the database in batches by one task, with the balance columns updated in the same
transaction as the ledger rows, so `users.quota == SUM(ledger.amount)` holds in the database
after every commit. On start, leftover journal segments are replayed and reservations that never
ended (the process died mid-request) are refunded.

Balances are never allowed below zero: when a request ends up costing more than it reserved
(no `max_tokens`, a longer answer than estimated) the overrun is charged only as far as the
balance allows, and the ledger note says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import Journal, read_segments, remove
from aitre.errors import ApiError
from aitre.store.models import LedgerEntry, Token, User, now_ms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Hold:
    hold_id: str
    user_id: int
    token_id: int | None
    amount: int
    token_limited: bool = False


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
        journal_dir: Path,
        flush_seconds: float = 0.2,
        fsync: bool = False,
    ) -> None:
        self._sessions = sessions
        self._journal = Journal(journal_dir, fsync=fsync)
        self._flush_seconds = flush_seconds
        self._balances: dict[int, int] = {}
        self._tokens: dict[int, _TokenAccount] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._open: dict[str, Hold] = {}
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- start and stop ----------------------------------------------------------------------
    async def recover(self) -> int:
        """Replay journal segments left by a previous run, then refund holds it never ended.

        Returns the number of holds refunded. Must run before the first request.
        """
        leftovers = self._journal.rotate()
        ops = list(read_segments(leftovers))
        async with self._sessions() as session, session.begin():
            for op in ops:
                await _apply_once(session, op)
            refunded = await _refund_open_holds(session)
        remove(leftovers)
        if ops or refunded:
            log.warning("ledger recovery: replayed %d operations, refunded %d open holds", len(ops), refunded)
        return refunded

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        self._journal.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("writing the ledger failed; will retry (the journal keeps every entry)")

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
        async with self._lock:
            async with self._sessions() as session:
                quota = await session.scalar(select(User.quota).where(User.id == user_id))
            if user_id not in self._balances:
                self._balances[user_id] = int(quota or 0) + self._pending_delta("user_id", user_id, "amount")

    async def _load_token(self, token_id: int) -> None:
        async with self._lock:
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
        return sum(int(op[amount_field]) for op in self._pending if op.get(field) == ident)

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
        async with self._lock:
            await self._flush_locked()
            self._balances.clear()
            self._tokens.clear()

    # --- the three operations ------------------------------------------------------------------
    async def reserve(self, hold: Hold) -> None:
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
        """End a hold at its real cost; returns what was charged (never more than available)."""
        if self._open.pop(hold.hold_id, None) is None:
            return 0
        # A balance dropped by `reload` is unknown here: then charge no more than was reserved.
        available = hold.amount + self._balances.get(hold.user_id, 0)
        acct = self._tokens.get(hold.token_id) if hold.token_id is not None else None
        if hold.token_limited:
            available = min(available, hold.amount + (acct.remain if acct is not None else 0))
        charge = max(0, min(actual, available))
        note = "" if charge == actual else f"cost {actual} capped at the available {charge}"
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

    async def credit(self, user_id: int, amount: int, kind: str, hold_id: str, note: str = "") -> None:
        """Add (or, negative, remove) quota outside a request: top-ups, redeem codes, adjustments."""
        await self._ensure_loaded(user_id, None)
        if self._balances[user_id] + amount < 0:
            raise ApiError(400, "That would make the balance negative.", code="negative_balance")
        self._balances[user_id] += amount
        op = {"op": kind, "hold_id": hold_id, "user_id": user_id, "token_id": None, "amount": amount}
        op.update({"token_amount": 0, "used": 0, "note": note, "ts": now_ms(), "count": 0})
        self._journal.append(op)
        self._pending.append(op)

    def _record(self, hold: Hold, kind: str, amount: int, used: int = 0, note: str = "") -> None:
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
        self._journal.append(op)
        self._pending.append(op)

    # --- writing to the database ---------------------------------------------------------------
    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self._pending:
            return
        ops, self._pending = self._pending, []
        segments = self._journal.rotate()
        try:
            async with self._sessions() as session, session.begin():
                await _write_batch(session, ops)
        except BaseException:
            self._pending[:0] = ops  # keep them, in order, for the next try
            raise
        remove(segments)

    def open_holds(self) -> int:
        return len(self._open)


async def _write_batch(session: AsyncSession, ops: list[dict[str, Any]]) -> None:
    await session.execute(insert(LedgerEntry), [_row(op) for op in ops])
    users: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    tokens: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for op in ops:
        u = users[op["user_id"]]
        u[0] += op["amount"]
        u[1] += op.get("used", 0)
        u[2] += op.get("count", 0)
        if op.get("token_id") is not None:
            t = tokens[op["token_id"]]
            t[0] += op.get("token_amount", 0)
            t[1] += op.get("used", 0)
    await session.execute(
        text(
            "UPDATE users SET quota = quota + :d, used_quota = used_quota + :u, "
            "request_count = request_count + :n WHERE id = :id"
        ),
        [{"d": d, "u": u, "n": n, "id": uid} for uid, (d, u, n) in users.items()],
    )
    if tokens:
        await session.execute(
            text(
                "UPDATE tokens SET remain_quota = remain_quota + :d, used_quota = used_quota + :u "
                "WHERE id = :id"
            ),
            [{"d": d, "u": u, "id": tid} for tid, (d, u) in tokens.items()],
        )


def _row(op: dict[str, Any]) -> dict[str, Any]:
    return {
        "created_at": op.get("ts", now_ms()),
        "user_id": op["user_id"],
        "token_id": op.get("token_id"),
        "hold_id": op["hold_id"],
        "kind": op["op"],
        "amount": op["amount"],
        "token_amount": op.get("token_amount", 0),
        "note": op.get("note", ""),
    }


async def _apply_once(session: AsyncSession, op: dict[str, Any]) -> None:
    """Replay one journaled operation unless its ledger row already exists."""
    exists = await session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.hold_id == op["hold_id"], LedgerEntry.kind == op["op"])
    )
    if exists is None:
        await _write_batch(session, [op])


async def _refund_open_holds(session: AsyncSession) -> int:
    """Refund every request reservation that has no settle or refund: its request died with us.

    Task holds (`task_*`) belong to the task engine, which resumes them instead.
    """
    rows = (
        await session.execute(
            text(
                "SELECT r.hold_id, r.user_id, r.token_id, r.amount, r.token_amount FROM ledger r "
                "WHERE r.kind = 'reserve' AND r.hold_id NOT LIKE 'task\\_%' ESCAPE '\\' AND NOT EXISTS "
                "(SELECT 1 FROM ledger e WHERE e.hold_id = r.hold_id AND e.kind IN ('settle', 'refund'))"
            )
        )
    ).all()
    ops = [
        {
            "op": "refund",
            "hold_id": hold_id,
            "user_id": user_id,
            "token_id": token_id,
            "amount": -amount,
            "token_amount": -token_amount,
            "used": 0,
            "count": 0,
            "note": "refunded on restart: the request was interrupted",
            "ts": int(time.time() * 1000),
        }
        for hold_id, user_id, token_id, amount, token_amount in rows
    ]
    if ops:
        await _write_batch(session, ops)
    return len(ops)
