"""How a task ends, exactly once, and closes its books.

Ending is one conditional update to a terminal status (`Recorder.change`: only if nobody changed
the row since, and for a worker only under its lease): whoever wins decides the outcome. Its
books close after: the durable hold is settled (success) or refunded (anything else), then one
usage-log row is written in the same transaction that sets `billed_at`. A crash in between
leaves an ended task with `billed_at` unset and its work still due: whoever claims it next closes
its books (the hold ends once whatever happens, the row is written once with `billed_at`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.billing.bank import Bank
from aitre.store.models import LedgerEntry, UsageLog, now_ms
from aitre.tasks.changes import Recorder
from aitre.tasks.db import TaskDb
from aitre.tasks.protocol import (
    CANCELLED,
    CANCELLED_CODE,
    NO_CHANNEL,
    SUBMIT_UNCERTAIN,
    SUCCEEDED,
    TIMEOUT,
    UPSTREAM_FAILED,
    TaskView,
)
from aitre.tasks.repo import T

if TYPE_CHECKING:
    from aitre.observe.metrics import Metrics

# The usage log's status column for an ended task (it has no HTTP status of its own): the codes
# the engine sets; any other is a protocol's refusal (`TaskRefused`): the request's fault, 400.
_ENGINE_CODES = {
    TIMEOUT: 504,
    CANCELLED_CODE: 499,
    UPSTREAM_FAILED: 502,
    SUBMIT_UNCERTAIN: 502,
    NO_CHANNEL: 503,
}


def cancelled(note: str = "cancelled") -> dict[str, Any]:
    """The values that end an open task as cancelled (refunded when its books close)."""
    return {
        "status": CANCELLED,
        "finished_at": now_ms(),
        "error": note,
        "error_code": CANCELLED_CODE,
        "cost": 0,
    }


def log_status(task: TaskView) -> int:
    if task.status == SUCCEEDED:
        return 200
    return _ENGINE_CODES.get(task.error_code, 400)


class Ender:
    def __init__(self, db: TaskDb, bank: Bank, recorder: Recorder, metrics: Metrics | None = None) -> None:
        self._db = db
        self._bank = bank
        self._recorder = recorder
        self._metrics = metrics

    async def end(
        self,
        task: TaskView,
        owner: str | None,
        status: str,
        error: str = "",
        code: str = "",
        values: dict[str, Any] | None = None,
        note: str = "",
    ) -> TaskView | None:
        """The terminal transition; None when the row moved on (someone else ended it)."""
        now = now_ms()
        out: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "error": error[:4000],
            "error_code": code,
            "cost": (values or {}).get("cost", task.reserved) if status == SUCCEEDED else 0,
        }
        if status == SUCCEEDED:
            out["progress"] = 100
        out.update({k: v for k, v in (values or {}).items() if k != "cost"})
        return await self._recorder.change(task, out, owner, note or error or status)

    async def bill(self, task: TaskView) -> bool:
        """Close the books of an ended task: end its hold, then write its usage row and
        `billed_at` (once: the first to set it writes the row). Whether this call did it."""
        if task.billed_at is not None:
            return False
        if task.status == SUCCEEDED:
            await self._bank.settle_by_id(task.hold_id, task.cost)
        else:
            await self._bank.refund_by_id(
                task.hold_id, f"task {task.status}: {task.error_code or task.status}"
            )
        now = now_ms()
        async with self._db.write() as session:
            charged = await _charged(session, task.hold_id)
            done = await session.execute(
                update(T)
                .where(T.c.id == task.id, T.c.billed_at.is_(None))
                .values(
                    billed_at=now,
                    cost=charged,
                    next_poll_at=None,
                    lease_owner=None,
                    lease_until=None,
                    version=T.c.version + 1,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return False
            row = usage_row(task, charged)
            await session.execute(insert(UsageLog).values(**row))
        if self._metrics is not None:
            self._metrics.task_ended(
                task.kind, task.status, row["endpoint"], task.model, task.channel_id, charged
            )
        return True


async def _charged(session: AsyncSession, hold_id: str) -> int:
    """What the hold cost in the end: the sum of its ledger rows (reserve, then settle or refund)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.hold_id == hold_id)
    )
    return max(0, -int(total or 0))


def usage_row(task: TaskView, charged: int) -> dict[str, Any]:
    """The task's one usage-log row: its whole history as the attempts."""
    finished = task.finished_at or now_ms()
    return {
        "created_at": finished,
        "request_id": task.id,
        "user_id": task.user_id,
        "token_id": task.token_id,
        "channel_id": task.channel_id,
        "endpoint": f"{task.kind}.{task.action}" if task.action else task.kind,
        "model": task.model,
        "upstream_model": "",
        "stream": False,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "usage_estimated": False,
        "status_code": log_status(task),
        "error": task.error[:2000],
        "latency_ms": float(max(0, finished - task.created_at)),
        "ttfb_ms": float(max(0, (task.started_at or finished) - task.created_at)),
        "client_ip": "",
        "quota": charged,
        "attempts": task.history,
    }
