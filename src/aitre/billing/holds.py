"""What every bank does the same way with holds: the overrun rule, durable reservations, and
ending a hold by its id from any process.

A request never costs more than its reservation: the reservation is the ceiling the client
agreed to (through `max_tokens`, or the default estimate), and it is the only amount known to
be affordable when the request ends. A dearer answer is charged at the reservation; the ledger
note says what it would have cost.

A durable hold (a task's: reserved at submit, ended minutes later, perhaps by another process
after a restart) has its reserve row committed before `reserve_durable` returns, belongs to no
instance (recovery never refunds it) and is ended only by id: `settle_by_id` / `refund_by_id`
load the reserve row from the database and end it there, exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.ledger_rows import open_hold, refund_op, write_ops
from aitre.errors import ApiError
from aitre.store.models import LedgerEntry, now_ms

if TYPE_CHECKING:
    from aitre.billing.bank import Hold
    from aitre.billing.books import Books

log = logging.getLogger(__name__)


def capped(reserved: int, actual: int) -> tuple[int, str]:
    """What a hold of `reserved` units is charged for a cost of `actual`, and the note."""
    charge = max(0, min(actual, reserved))
    return charge, "" if charge == actual else f"cost {actual} capped at the reserved {charge}"


def billing_unavailable(
    message: str = "The gateway's balance store is not answering; retry shortly.",
) -> ApiError:
    """A store that holds balances, holds or the books (Redis, the database) did not answer."""
    return ApiError(
        503, message, type="server_error", code="billing_unavailable", headers={"retry-after": "1"}
    )


def books_backlogged() -> ApiError:
    """The books waiting for the database reached their bound (`AITRE_BOOKS_MAX_PENDING`)."""
    return billing_unavailable("The gateway cannot write its books to the database right now; retry shortly.")


def check_durable(hold: Hold) -> None:
    if not hold.hold_id or len(hold.hold_id) > 64:
        raise ValueError("a durable hold needs an id of 1 to 64 characters")
    hold.durable = True


async def commit_durable(books: Books, sessions: async_sessionmaker[AsyncSession], hold_id: str) -> bool:
    """Write the books now; whether the hold's reserve row is in the database."""
    try:
        await books.flush()
        async with sessions() as session:
            found = await session.scalar(
                select(LedgerEntry.id).where(LedgerEntry.hold_id == hold_id, LedgerEntry.kind == "reserve")
            )
    except Exception:
        log.exception("a durable hold (%s) could not be written", hold_id)
        return False
    return found is not None


async def end_by_id(
    sessions: async_sessionmaker[AsyncSession],
    books: Books,
    hold_id: str,
    actual: int | None,
    note: str,
    mirror: Callable[[dict[str, Any]], None],
) -> dict[str, Any] | None:
    """Settle (at `actual`) or refund (`actual` None) the open hold `hold_id`, in the database,
    whichever process reserved it. Returns the operation written, or None when the hold is not
    open (never reserved, or already ended: nothing changes). `mirror` applies the operation
    to this process's live balances, under the books' lock (no balance load in between)."""
    try:
        async with books.lock:
            await books.flush_locked()  # this process's pending operations come first
            async with sessions() as session, session.begin():
                held = await open_hold(session, hold_id)
                if held is None:
                    return None
                user_id, token_id, reserved, token_reserved = held
                if actual is None:
                    op = refund_op(hold_id, user_id, token_id, -reserved, -token_reserved, note)
                else:
                    charge, cap_note = capped(reserved, actual)
                    back = reserved - charge
                    op = {
                        "op": "settle",
                        "hold_id": hold_id,
                        "user_id": user_id,
                        "token_id": token_id,
                        "amount": back,
                        "token_amount": back if token_reserved else 0,
                        "used": charge,
                        "count": 1,
                        "note": "; ".join(n for n in (note, cap_note) if n),
                        "ts": now_ms(),
                    }
                if await write_ops(session, [op], None):
                    return None  # ended by another transaction first
            mirror(op)
            return op
    except (DBAPIError, OSError) as exc:
        log.warning("ending hold %s by id failed: %s", hold_id, exc)
        raise billing_unavailable("The gateway's database is not answering; retry shortly.") from None
