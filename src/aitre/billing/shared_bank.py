"""The bank for several processes (`--workers N`, or many instances on PostgreSQL): the database
is the authority on balances.

A reservation is one transaction: a conditional `UPDATE ... WHERE quota >= amount` on the user
(and on the key, when it has its own quota) and the `reserve` ledger row. The database serialises
those updates, so however many processes race on one key, none can take more than is there.
Settlements and refunds go through the books (journaled before the answer leaves, written in
batches), like the single-process bank's. A settlement is capped at what was reserved: only the
reservation is known to be affordable here, so an answer dearer than its estimate is not charged
beyond it (the ledger note says so).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.bank import Hold, credit_op, hold_op, insufficient
from aitre.billing.books import Books
from aitre.errors import ApiError
from aitre.store.bulk import insert_rows
from aitre.store.models import Token, User, now_ms

_LEDGER_COLUMNS = ("created_at", "user_id", "token_id", "hold_id", "kind", "amount", "token_amount", "note")


class SharedBank:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], books: Books) -> None:
        self._sessions = sessions
        self._books = books
        self._open: dict[str, Hold] = {}

    async def reserve(self, hold: Hold) -> None:
        async with self._sessions() as session, session.begin():
            took = await session.execute(
                text("UPDATE users SET quota = quota - :a WHERE id = :u AND quota >= :a"),
                {"a": hold.amount, "u": hold.user_id},
            )
            if took.rowcount != 1:  # type: ignore[attr-defined]
                balance = await session.scalar(select(User.quota).where(User.id == hold.user_id))
                raise insufficient(
                    f"Insufficient balance: the request needs up to {hold.amount} units, the account has "
                    f"{balance or 0}."
                )
            hold.token_limited = False
            if hold.token_id is not None:
                await self._take_from_key(session, hold)
            row = (now_ms(), hold.user_id, hold.token_id, hold.hold_id, "reserve", -hold.amount,
                   -hold.amount if hold.token_limited else 0, "")  # fmt: skip
            await insert_rows(await session.connection(), "ledger", _LEDGER_COLUMNS, [row])
        self._open[hold.hold_id] = hold

    async def _take_from_key(self, session: AsyncSession, hold: Hold) -> None:
        took = await session.execute(
            text(
                "UPDATE tokens SET remain_quota = remain_quota - :a "
                "WHERE id = :t AND NOT unlimited AND remain_quota >= :a"
            ),
            {"a": hold.amount, "t": hold.token_id},
        )
        if took.rowcount == 1:  # type: ignore[attr-defined]
            hold.token_limited = True
            return
        row = (
            await session.execute(
                select(Token.unlimited, Token.remain_quota).where(Token.id == hold.token_id)
            )
        ).first()
        if row is not None and not row[0]:
            # Raising rolls back the transaction: the user's part of the reservation too.
            raise insufficient(
                f"This API key's quota is used up: the request needs up to {hold.amount} units, the key has "
                f"{row[1]} left."
            )

    def settle(self, hold: Hold, actual: int) -> int:
        if self._open.pop(hold.hold_id, None) is None:
            return 0
        charge = max(0, min(actual, hold.amount))
        note = "" if charge == actual else f"cost {actual} capped at the reserved {charge}"
        self._record(hold, "settle", hold.amount - charge, used=charge, note=note)
        return charge

    def refund(self, hold: Hold, note: str = "") -> None:
        if self._open.pop(hold.hold_id, None) is None:
            return
        self._record(hold, "refund", hold.amount, used=0, note=note)

    def _record(self, hold: Hold, kind: str, amount: int, used: int, note: str) -> None:
        self._books.ledger(hold_op(hold, kind, amount, used, note), now=True)

    async def credit(self, user_id: int, amount: int, kind: str, hold_id: str, note: str = "") -> None:
        if amount < 0 and await self.balance(user_id) + amount < 0:
            raise ApiError(400, "That would make the balance negative.", code="negative_balance")
        self._books.ledger(credit_op(user_id, amount, kind, hold_id, note), now=True)

    async def balance(self, user_id: int) -> int:
        await self._books.flush()
        async with self._sessions() as session:
            return int(await session.scalar(select(User.quota).where(User.id == user_id)) or 0)

    async def token_remaining(self, token_id: int) -> int | None:
        await self._books.flush()
        async with self._sessions() as session:
            row = (
                await session.execute(select(Token.remain_quota, Token.unlimited).where(Token.id == token_id))
            ).first()
        return None if row is None or row[1] else int(row[0])

    async def reload(self) -> None:
        """Nothing is cached: the database is the authority."""

    async def flush(self) -> None:
        await self._books.flush()

    async def apply_external(self, info: dict[str, Any]) -> None:
        """Nothing to do: the database is the authority."""

    def open_holds(self) -> int:
        return len(self._open)
