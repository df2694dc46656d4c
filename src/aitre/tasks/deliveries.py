"""notifyHook calls: an outbox table written in the same transaction as the task's change, and the
worker that delivers it.

Each change of a task's status or progress, for a task with a hook (its client's, else the
operator's `AITRE_TASK_NOTIFY_HOOK`), adds a row with the task as its kind renders it. Rows of a
task go out in order (`seq`); a newer change of the same status supersedes one not yet sent (a
receiver that is slow gets the latest progress, never a skipped status). Calls go through the
guarded fetcher (no private addresses unless allowed), signed (`signing.py`), with a timeout and
retries with backoff; a claimed row is leased, so two instances never send the same call.

A call is made at most once: its start is recorded before it is made, and a call found started
without an outcome (the instance making it died) is not made again (it may have arrived) but
fails as `interrupted`; an operator can send it again (admin API, CLI). Receivers can tell calls
apart by `X-Aitre-Delivery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Table, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.config import Settings
from aitre.errors import ConflictError, NotFoundError
from aitre.media.fetch import FetchRefused, MediaFetcher, PostFailed
from aitre.secrets import SecretBox
from aitre.store.models import TaskDelivery, now_ms
from aitre.tasks import signing
from aitre.tasks.claim import Claimer
from aitre.tasks.db import TaskDb
from aitre.tasks.protocol import Delivery, TaskView

if TYPE_CHECKING:
    from aitre.observe.metrics import Metrics

log = logging.getLogger(__name__)
D = cast(Table, TaskDelivery.__table__)
PENDING, DELIVERED, FAILED, SUPERSEDED = "pending", "delivered", "failed", "superseded"
INTERRUPTED = (
    "interrupted: the gateway making this call stopped before the receiver's answer was recorded; it may "
    "have arrived, so it is not made again (send it again from the admin API or `aitre task retry-delivery`)"
)
_MAX_BACKOFF_S = 300.0


def to_delivery(row: Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        task_id=m["task_id"],
        seq=m["seq"],
        url=m["url"],
        status=m["status"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        last_status=m["last_status"],
        created_at=m["created_at"],
        next_at=m["next_at"],
        delivered_at=m["delivered_at"],
        payload=orjson.loads(m["body"]),
    )


async def enqueue(
    session: AsyncSession, task: TaskView, url: str, operator: bool, body: bytes, now: int
) -> None:
    """Queue the call for `task` as it is now (its `notify_seq` already counts this call)."""
    await session.execute(
        update(D)
        .where(
            D.c.task_id == task.id,
            D.c.status == PENDING,
            D.c.task_status == task.status,
            (D.c.lease_owner.is_(None)) | (D.c.next_at < now),
        )
        .values(status=SUPERSEDED, next_at=None, lease_owner=None)
    )
    await session.execute(
        D.insert().values(
            task_id=task.id,
            seq=task.notify_seq,
            user_id=task.user_id,
            url=url,
            operator_hook=operator,
            task_status=task.status,
            body=body.decode(),
            status=PENDING,
            attempts=0,
            last_error="",
            next_at=now,
            created_at=now,
        )
    )


async def for_task(session: AsyncSession, task_id: str) -> list[Delivery]:
    rows = await session.execute(select(D).where(D.c.task_id == task_id).order_by(D.c.seq))
    return [to_delivery(r) for r in rows]


async def retry(session: AsyncSession, delivery_id: int, now: int) -> Delivery:
    """A failed call goes out again, with its attempts starting over."""
    row = (await session.execute(select(D).where(D.c.id == delivery_id))).first()
    if row is None:
        raise NotFoundError(f"no delivery {delivery_id}")
    if row._mapping["status"] != FAILED:
        raise _not_failed(delivery_id, row._mapping["status"])
    done = await session.execute(
        update(D)
        .where(D.c.id == delivery_id, D.c.status == FAILED)
        .values(status=PENDING, attempts=0, next_at=now, lease_owner=None, sending_at=None)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise _not_failed(delivery_id, "changing")
    fresh = (await session.execute(select(D).where(D.c.id == delivery_id))).one()
    return to_delivery(fresh)


def _not_failed(delivery_id: int, status: str) -> ConflictError:
    err = ConflictError(f"delivery {delivery_id} is {status}; only a failed one can be sent again")
    err.code = "delivery_not_failed"
    return err


class Deliverer:
    """The worker side: claims due calls and makes them."""

    def __init__(
        self,
        db: TaskDb,
        box: SecretBox,
        fetcher: MediaFetcher,
        claimer: Claimer,
        settings: Settings,
        owner: Callable[[], str],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._box = box
        self._fetcher = fetcher
        self._claimer = claimer
        self._settings = settings
        self._owner = owner

    async def claim(self, limit: int) -> Sequence[tuple[tuple[str, Row[Any]], int]]:
        owner = self._owner()
        _, rows = await self._claimer.claim_deliveries(owner, limit)
        return [((owner, r), 1) for r in rows]

    async def next_due(self) -> int | None:
        async with self._db.read() as session:
            value = await session.scalar(
                text("SELECT MIN(next_at) FROM task_deliveries WHERE next_at IS NOT NULL")
            )
        return int(value) if value is not None else None

    async def handle(self, unit: tuple[str, Row[Any]]) -> None:
        owner, row = unit
        m = row._mapping
        if m["sending_at"] is not None:
            await self._record(owner, m, None, INTERRUPTED, final=True)
            return
        if not await self._start(owner, m):
            return
        body = str(m["body"]).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "aitre-notify/1",
            "X-Aitre-Task-Id": str(m["task_id"]),
            "X-Aitre-Delivery": str(m["id"]),
        }
        status: int | None = None
        error = ""
        final = False
        operator = bool(m["operator_hook"])
        try:
            secret = await self._secret(operator, int(m["user_id"]))
            if secret is None and not operator:
                await self._record(
                    owner, m, None, "the task's user no longer exists: nothing to sign with", True
                )
                return
            if secret:
                headers[signing.HEADER] = signing.sign(secret, int(time.time()), body)
            status = await self._fetcher.post(str(m["url"]), body, headers, self._settings.notify_timeout)
            if not 200 <= status < 300:
                error = f"the receiver answered HTTP {status}"
        except FetchRefused as refused:
            error, final = refused.message, True
        except PostFailed as failed:
            error = str(failed)
        await self._record(owner, m, status, error, final)

    async def _start(self, owner: str, m: Any) -> bool:
        """Record that the call is being made (committed before it is)."""
        async with self._db.write() as session:
            started = await session.execute(
                update(D)
                .where(D.c.id == m["id"], D.c.lease_owner == owner, D.c.status == PENDING)
                .values(sending_at=now_ms())
            )
        return bool(started.rowcount == 1)  # type: ignore[attr-defined]

    async def _secret(self, operator: bool, user_id: int) -> str | None:
        if operator:
            return self._settings.task_notify_secret or None
        async with self._db.write() as session:
            return await signing.hook_secret(session, self._box, user_id)

    async def _record(self, owner: str, m: Any, status: int | None, error: str, final: bool) -> None:
        attempts = int(m["attempts"]) + 1
        now = now_ms()
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "lease_owner": None,
            "sending_at": None,
        }
        if not error:
            values.update(status=DELIVERED, delivered_at=now, next_at=None, last_error="")
        elif final or attempts >= self._settings.notify_max_attempts:
            values.update(status=FAILED, next_at=None, last_error=error[:2000])
            log.warning("notifyHook call %s of task %s failed: %s", m["id"], m["task_id"], error)
        else:
            pause = min(self._settings.notify_backoff_seconds * 2 ** (attempts - 1), _MAX_BACKOFF_S)
            values.update(next_at=now + int(pause * 1000), last_error=error[:2000])
        async with self._db.write() as session:
            await session.execute(
                update(D)
                .where(D.c.id == m["id"], D.c.lease_owner == owner, D.c.status == PENDING)
                .values(**values)
            )
        if self._metrics is not None:
            self._metrics.notified(values.get("status", "retry"))
