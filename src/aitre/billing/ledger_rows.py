"""How ledger operations become rows: batched writes with the balance updates they imply, and
the one rule that makes a hold end exactly once.

A reserve row is open until its `ended_at` is set. Whoever ends a hold whose reserve row is
already in the database (its owner in a later batch, another process by id, a recovering
instance) sets `ended_at` with a conditional `UPDATE ... WHERE ended_at IS NULL` in the same
transaction as the ending row; the database lets one of them through, and the others' endings
are dropped. A reservation and its settlement in the same batch (the usual case) become one
`charge` row: nobody else can have seen that hold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.store.bulk import insert_rows
from aitre.store.models import OPEN_RESERVE, now_ms

LEDGER_COLUMNS = (
    "created_at", "user_id", "token_id", "hold_id", "kind", "amount", "token_amount", "note", "owner",
    "ended_at",
)  # fmt: skip
ENDINGS = ("settle", "refund")
_CHUNK = 500  # ids per IN (...) list


def ledger_rows(ops: Sequence[dict[str, Any]], owner: str | None) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The rows for a batch of operations, in order, and the positions (in `ops`) of endings
    whose reservation is not in the batch: those end a reserve row already in the database.

    Reserve rows are stamped with `owner` (the instance writing them), durable ones with none.
    A reservation settled in the same batch becomes one `charge` row: half the rows, the same
    sums. A refund stays explicit, and its reserve row is written already ended."""
    rows: list[tuple[Any, ...]] = []
    reserved: dict[str, int] = {}
    outside: list[int] = []
    for i, op in enumerate(ops):
        kind, hold = op["op"], op["hold_id"]
        if kind == "settle" or kind == "refund":
            j = reserved.pop(hold, None)
            if j is None:
                outside.append(i)
            elif kind == "settle":
                r = rows[j]
                rows[j] = (op["ts"], r[1], r[2], hold, "charge", r[5] + op["amount"],
                           r[6] + op["token_amount"], op["note"], None, None)  # fmt: skip
                continue
            else:
                rows[j] = (*rows[j][:9], op["ts"])
        elif kind == "reserve":
            reserved[hold] = len(rows)
        stamp = owner if kind == "reserve" and not op.get("durable") else None
        rows.append(
            (op["ts"], op["user_id"], op.get("token_id"), hold, kind, op["amount"], op["token_amount"],
             op["note"], stamp, None)
        )  # fmt: skip
    return rows, outside


async def write_ops(
    session: AsyncSession, ops: Sequence[dict[str, Any]], owner: str | None
) -> list[dict[str, Any]]:
    """Write a batch of operations and the balance changes they make, in the caller's
    transaction. Returns the endings dropped because their hold had already ended (refunded
    by a recovering instance, say) or was never written: they change nothing."""
    rows, outside = ledger_rows(ops, owner)
    dropped: list[dict[str, Any]] = []
    if outside:
        ended = await end_reserves(session, {ops[i]["hold_id"] for i in outside})
        for i in outside:
            hold = ops[i]["hold_id"]
            if hold in ended:
                ended.discard(hold)  # a second ending of the same hold is dropped
            else:
                dropped.append(ops[i])
        if dropped:
            gone = {id(op) for op in dropped}
            ops = [op for op in ops if id(op) not in gone]
            rows, _ = ledger_rows(ops, owner)
    await apply_rows(session, rows, ops)
    return dropped


async def end_reserves(session: AsyncSession, holds: set[str] | list[str]) -> set[str]:
    """Mark these holds' open reserve rows ended; returns the holds that were open (and are
    now this transaction's to end)."""
    ended: set[str] = set()
    ids = list(holds)
    stmt = text(
        f"UPDATE ledger SET ended_at = :now WHERE {OPEN_RESERVE} AND hold_id IN :ids RETURNING hold_id"
    ).bindparams(bindparam("ids", expanding=True, type_=String()))
    now = now_ms()
    for start in range(0, len(ids), _CHUNK):
        result = await session.execute(stmt, {"now": now, "ids": ids[start : start + _CHUNK]})
        ended.update(r[0] for r in result)
    return ended


async def apply_rows(
    session: AsyncSession, rows: list[tuple[Any, ...]], ops: Sequence[dict[str, Any]]
) -> None:
    """Insert ledger rows and move the balance columns by what their operations say."""
    if not rows:
        return
    await insert_rows(await session.connection(), "ledger", LEDGER_COLUMNS, rows)
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


def refund_op(hold_id: str, user_id: int, token_id: int | None, reserved: int, token_reserved: int,
              note: str) -> dict[str, Any]:  # fmt: skip
    """The refund of a reserve row (`reserved`, `token_reserved`: its negative amounts)."""
    return {
        "op": "refund",
        "hold_id": hold_id,
        "user_id": user_id,
        "token_id": token_id,
        "amount": -reserved,
        "token_amount": -token_reserved,
        "used": 0,
        "count": 0,
        "note": note,
        "ts": now_ms(),
    }


async def refund_open(
    session: AsyncSession, owned_by: str, params: dict[str, Any], note: str, expanding: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """End and refund, in the caller's transaction, every open reserve row whose owner matches
    `owned_by` (an SQL condition on `owner`; `expanding`: its parameters that are lists of
    strings, for `IN :name`). Rows another transaction ends first are skipped:
    each hold is refunded once, however many recoverers run at the same moment."""
    stmt = text(
        f"UPDATE ledger SET ended_at = :now WHERE {OPEN_RESERVE} AND ({owned_by}) "
        "RETURNING hold_id, user_id, token_id, amount, token_amount"
    )
    if expanding:
        stmt = stmt.bindparams(*(bindparam(name, expanding=True, type_=String()) for name in expanding))
    result = await session.execute(stmt, {"now": now_ms(), **params})
    ops = [refund_op(h, u, t, int(a), int(ta or 0), note) for h, u, t, a, ta in result]
    if ops:
        await apply_rows(session, ledger_rows(ops, None)[0], ops)
    return ops


async def open_hold(session: AsyncSession, hold_id: str) -> tuple[int, int | None, int, int] | None:
    """An open reserve row: user id, key id, and the units it reserved (positive) from each."""
    row = (
        await session.execute(
            text(
                "SELECT user_id, token_id, amount, token_amount FROM ledger "
                f"WHERE hold_id = :h AND {OPEN_RESERVE}"
            ),
            {"h": hold_id},
        )
    ).first()
    if row is None:
        return None
    return int(row[0]), row[1], -int(row[2]), -int(row[3] or 0)
