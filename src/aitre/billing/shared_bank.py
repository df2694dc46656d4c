"""The bank for several processes (`--workers N`, or many instances on PostgreSQL): the database
is the authority on balances.

A reservation is one transaction: a conditional `UPDATE ... WHERE quota >= amount` on the user
(and on the key, when it has its own quota) and the `reserve` ledger row. The database serialises
those updates, so however many processes race on one key, none can take more than is there.
The reserve row carries the id of this instance (`instances.py`), which owns the hold until it
ends. Settlements and refunds go through the books (journaled before the answer leaves, written
in batches), like the single-process bank's. A settlement is capped at what was reserved, as in
every bank (`holds.capped`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.bank import Hold, billing_unavailable, credit_op, hold_op, insufficient
from aitre.billing.books import Books
from aitre.billing.holds import books_backlogged, capped, check_durable, end_by_id
from aitre.billing.ledger_rows import LEDGER_COLUMNS
from aitre.errors import ApiError
from aitre.store.bulk import insert_rows
from aitre.store.models import Token, User, now_ms

log = logging.getLogger(__name__)


class SharedBank:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], books: Books) -> None:
        self._sessions = sessions
        self._books = books
        self._open: dict[str, Hold] = {}

    async def reserve(self, hold: Hold) -> None:
        if self._books.full():
            raise books_backlogged()
        try:
            await self._reserve(hold)
        except (DBAPIError, OSError) as exc:
            log.warning("reserving in the database failed: %s", exc)
            raise billing_unavailable("The gateway's database is not answering; retry shortly.") from None
        if not hold.durable:
            self._open[hold.hold_id] = hold

    async def _reserve(self, hold: Hold) -> None:
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
            owner = None if hold.durable else self._books.owner()
            row = (now_ms(), hold.user_id, hold.token_id, hold.hold_id, "reserve", -hold.amount,
                   -hold.amount if hold.token_limited else 0, "", owner, None)  # fmt: skip
            await insert_rows(await session.connection(), "ledger", LEDGER_COLUMNS, [row])

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
        charge, note = capped(hold.amount, actual)
        self._record(hold, "settle", hold.amount - charge, used=charge, note=note)
        return charge

    def refund(self, hold: Hold, note: str = "") -> None:
        if self._open.pop(hold.hold_id, None) is None:
            return
        self._record(hold, "refund", hold.amount, used=0, note=note)

    # --- holds that outlive the process ---------------------------------------------------------
    async def reserve_durable(self, hold: Hold) -> None:
        check_durable(hold)
        await self.reserve(hold)  # one transaction: committed when it returns

    async def settle_by_id(self, hold_id: str, actual: int) -> int:
        hold = self._open.get(hold_id)
        if hold is not None:
            return self.settle(hold, actual)
        op = await end_by_id(self._sessions, self._books, hold_id, actual, "", _nothing)
        return int(op["used"]) if op else 0

    async def refund_by_id(self, hold_id: str, note: str = "") -> bool:
        hold = self._open.get(hold_id)
        if hold is not None:
            self.refund(hold, note)
            return True
        return await end_by_id(self._sessions, self._books, hold_id, None, note, _nothing) is not None

    def absorb(self, changes: list[dict[str, Any]]) -> None:
        """Nothing to do: the database is the authority."""

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


def _nothing(op: dict[str, Any]) -> None:
    """No live balances outside the database to move."""
