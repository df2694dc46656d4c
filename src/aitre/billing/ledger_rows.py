"""How ledger operations become rows: batched writes with the balance updates they imply,
idempotent replay after a crash, and the refund of reservations whose request never ended."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.store.bulk import insert_rows
from aitre.store.models import LedgerEntry

_LEDGER_COLUMNS = ("created_at", "user_id", "token_id", "hold_id", "kind", "amount", "token_amount", "note")


def ledger_rows(ops: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows for a batch of operations, in order. A request whose reservation and settlement
    are in the same batch (the usual case) gets one `charge` row: half the rows, the same sums.
    Refunds stay explicit."""
    rows: list[tuple[Any, ...]] = []
    reserved: dict[str, int] = {}
    for op in ops:
        kind, hold = op["op"], op["hold_id"]
        if kind == "settle" and hold in reserved:
            i = reserved.pop(hold)
            r = rows[i]
            rows[i] = (
                op["ts"],
                r[1],
                r[2],
                hold,
                "charge",
                r[5] + op["amount"],
                r[6] + op["token_amount"],
                op["note"],
            )
            continue
        if kind == "reserve":
            reserved[hold] = len(rows)
        rows.append(
            (
                op["ts"],
                op["user_id"],
                op.get("token_id"),
                hold,
                kind,
                op["amount"],
                op["token_amount"],
                op["note"],
            )
        )
    return rows


async def write_ops(session: AsyncSession, ops: list[dict[str, Any]]) -> None:
    rows = ledger_rows(ops)
    await insert_rows(await session.connection(), "ledger", _LEDGER_COLUMNS, rows)
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


async def apply_once(session: AsyncSession, op: dict[str, Any]) -> None:
    """Replay one journaled operation unless the database already has it (as its own row, or,
    for a reservation or settlement, folded into a `charge` row)."""
    kinds = [op["op"], "charge"] if op["op"] in ("reserve", "settle") else [op["op"]]
    exists = await session.scalar(
        select(LedgerEntry.id)
        .where(LedgerEntry.hold_id == op["hold_id"], LedgerEntry.kind.in_(kinds))
        .limit(1)
    )
    if exists is None:
        await write_ops(session, [op])


async def refund_open_holds(session: AsyncSession) -> list[dict[str, Any]]:
    """Refund every request reservation that has no settle or refund: its request died with us.

    Task holds (`task_*`) belong to the task engine, which resumes them instead.
    """
    rows = (
        await session.execute(
            text(
                "SELECT r.hold_id, r.user_id, r.token_id, r.amount, r.token_amount FROM ledger r "
                "WHERE r.kind = 'reserve' AND r.hold_id NOT LIKE 'task\\_%' ESCAPE '\\' AND NOT EXISTS "
                "(SELECT 1 FROM ledger e WHERE e.hold_id = r.hold_id "
                "AND e.kind IN ('settle', 'refund', 'charge'))"
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
        await write_ops(session, ops)
    return ops
