"""The task engine (`state.tasks`): what the kind APIs, the admin API and the CLI call, and the
workers that run beside the relay in every gateway process.

Two claim loops (`pump.Pump`) run per process: one for tasks (`steps.Runner`), one for notifyHook
calls (`deliveries.Deliverer`). Neither wakes up while nothing is due. A task this process creates,
cancels or resumes is claimed in the same statement that changes it and run here at once; the
loops find the rest (polls falling due, leases of dead workers running out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from aitre.billing.bank import Hold
from aitre.errors import ApiError
from aitre.periodic import cancel, every
from aitre.relay.errors import no_channel
from aitre.store.models import now_ms
from aitre.tasks import deliveries, repo
from aitre.tasks.changes import Recorder
from aitre.tasks.claim import GONE, TASKS, Claimer
from aitre.tasks.db import TaskDb
from aitre.tasks.deliveries import Deliverer
from aitre.tasks.ending import Ender, cancelled
from aitre.tasks.protocol import (
    QUEUED,
    RUNNING,
    WAITING,
    Delivery,
    TaskContext,
    TaskFilter,
    TaskSpec,
    TaskView,
)
from aitre.tasks.pump import Pump
from aitre.tasks.registry import TaskRegistry
from aitre.tasks.routing import Routes
from aitre.tasks.steps import One, Runner, Unit
from aitre.tasks.validate import check_spec

if TYPE_CHECKING:
    from aitre.state import AppState

log = logging.getLogger("aitre.tasks")
_MEDIA_SWEEP_S = 3600.0


class TaskEngine:
    def __init__(self, state: AppState, registry: TaskRegistry) -> None:
        s = state.settings
        self.registry = registry
        self._state = state
        self._settings = s
        self._db = db = TaskDb(state.sessions, s.is_sqlite)
        self._lease_ms = int(s.task_lease_seconds * 1000)
        # Polls due within this much go out together (fewer, larger rounds); never more than
        # half the shortest pause between two polls of a task.
        self._early_ms = int(min(0.5, s.task_poll_min_seconds / 2) * 1000)
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.claimer = Claimer(db, s.is_sqlite, s.task_lease_seconds)
        self.recorder = Recorder(db, registry, state.media, s, self._changed)
        self.ender = Ender(db, state.accountant.bank, self.recorder, state.metrics)
        self.routes = Routes(state.catalog, state.health, registry)
        ctx = TaskContext(state, s, state.upstream, state.fetcher, state.media, log)
        self.runner = Runner(ctx, db, registry, self.routes, self.recorder, self.ender, self._due)
        self.workers: Pump[Unit] = Pump(
            "task-worker",
            self._may_claim,
            self._claim,
            self.runner.handle,
            self._next_due,
            max(1, s.task_claim_batch * 2),
            s.task_idle_check_seconds,
            max(1, s.task_claim_batch),
        )
        self.deliverer = Deliverer(db, state.box, state.fetcher, self.claimer, s, self._owner, state.metrics)
        self.notifier: Pump[Any] = Pump(
            "notify-worker",
            self._may_claim,
            self.deliverer.claim,
            self.deliverer.handle,
            self.deliverer.next_due,
            max(1, s.task_concurrency),
            s.task_idle_check_seconds,
        )
        self._renewer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def _owner(self) -> str:
        return self._state.instance.id

    # --- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._free_leases_of_gone_instances()
        self._state.instance.on_gone.append(self._instances_gone)
        self.workers.start()
        self.notifier.start()
        self._renewer = asyncio.get_running_loop().create_task(self._renew_leases(), name="task-leases")
        if self._settings.media_retention_days > 0:
            seconds = self._settings.media_retention_days * 86400
            self._sweeper = every(
                _MEDIA_SWEEP_S,
                lambda: self._state.media.sweep(seconds),
                "media-retention",
                "media sweep failed",
            )

    async def stop(self) -> None:
        """Stop the workers; what they held is due again at once (for another process, or the
        next start), in whatever step it was: a broken submit is looked up, never resent."""
        await self.workers.stop()
        await self.notifier.stop()
        for close in self.registry.closers:
            try:
                await close()
            except Exception:
                log.exception("stopping a task protocol's background work failed")
        await cancel(self._renewer)
        await cancel(self._sweeper)
        owner = self._owner()
        try:
            async with self._db.write() as session:
                now = now_ms()
                await session.execute(
                    text(
                        "UPDATE tasks SET next_poll_at = :now, lease_owner = NULL, lease_until = NULL "
                        "WHERE lease_owner = :me AND next_poll_at IS NOT NULL"
                    ),
                    {"now": now, "me": owner},
                )
                await session.execute(
                    text(
                        "UPDATE task_deliveries SET next_at = :now, lease_owner = NULL "
                        "WHERE lease_owner = :me AND next_at IS NOT NULL"
                    ),
                    {"now": now, "me": owner},
                )
            await self.claimer.let_go(owner)
        except Exception:
            log.exception("could not hand back this instance's task leases; they run out by themselves")

    async def _instances_gone(self, ids: list[str]) -> None:
        """This process recovered instances that died: their tasks and notifyHook calls are
        due now, here or on any other live instance (not when their leases would run out)."""
        await self._free_leases_of_gone_instances()
        now = now_ms()
        self.workers.due_at(now)
        self.notifier.due_at(now)

    async def _free_leases_of_gone_instances(self) -> None:
        """Leases of instances known to be gone (an earlier run on this data folder, recovered
        on start; one swept as dead) need not run out: due now."""
        gone = GONE
        async with self._db.write() as session:
            now = now_ms()
            await session.execute(
                text(
                    "UPDATE tasks SET next_poll_at = :now "
                    f"WHERE next_poll_at > :now AND lease_owner IN ({gone})"
                ),
                {"now": now},
            )
            await session.execute(
                text(
                    "UPDATE task_deliveries SET next_at = :now "
                    f"WHERE next_at > :now AND lease_owner IN ({gone})"
                ),
                {"now": now},
            )

    async def _renew_leases(self) -> None:
        """While tasks are being worked on here, their leases are pushed on (every third of a lease)."""
        period = self._settings.task_lease_seconds / 3
        while True:
            await self.runner.busy.wait()
            await asyncio.sleep(period)
            held: dict[str, list[str]] = {}
            for task_id, owner in list(self.runner.active.items()):
                held.setdefault(owner, []).append(task_id)
            if not held:
                self.runner.busy.clear()
                continue
            try:
                for owner, ids in held.items():
                    await self.claimer.renew(TASKS, "next_poll_at", owner, ids)
            except Exception:
                log.exception("renewing task leases failed; trying again")

    # --- the claim loops' hooks ------------------------------------------------------------------
    async def _may_claim(self) -> bool:
        return await self.claimer.may_claim(self._owner())

    async def _claim(self, limit: int) -> list[tuple[Unit, int]]:
        owner = self._owner()
        _, rows = await self.claimer.claim_tasks(owner, limit, self._early_ms)
        return self.runner.units(owner, now_ms(), rows)

    async def _next_due(self) -> int | None:
        async with self._db.read() as session:
            return await repo.next_due(session)

    def _due(self, at_ms: int) -> None:
        self.workers.due_at(at_ms)

    def _changed(self, task: TaskView, calls: bool) -> None:
        for event in self._watchers.get(task.id, ()):
            event.set()
        if calls:
            self.notifier.due_at(task.updated_at)

    def _run_here(self, task: TaskView) -> None:
        self.workers.spawn(One(self._owner(), task), 1)

    # --- the service -----------------------------------------------------------------------------
    async def create(self, spec: TaskSpec) -> TaskView:
        s = self._settings
        check_spec(spec, self._state.fetcher.policy)
        now = now_ms()
        seconds = (
            spec.deadline_s
            if spec.deadline_s is not None
            else s.task_timeouts.get(spec.kind, s.task_timeout_seconds)
        )
        until = now + self._lease_ms
        values: dict[str, Any] = {
            "id": spec.id,
            "kind": spec.kind,
            "action": spec.action,
            "model": spec.model,
            "user_id": spec.user_id,
            "token_id": spec.token_id,
            "group": spec.group,
            "status": QUEUED,
            "progress": 0,
            "request": spec.request,
            "result": {},
            "media": [],
            "error": "",
            "error_code": "",
            "channel_id": spec.channel_id,
            "channel_pinned": spec.channel_id is not None,
            "upstream_id": None,
            "submit_key": "",
            "attempts": 0,
            "hold_id": f"task_{spec.id}",
            "reserved": spec.cost,
            "cost": 0,
            "parent_id": spec.parent_id,
            "notify_hook": spec.notify_hook or None,
            "client_state": spec.client_state,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "updated_at": now,
            "deadline_at": now + int(seconds * 1000),
            "history": [{"at": now, "status": QUEUED, "progress": 0, "note": "created"}],
        }
        task = TaskView(**values)
        if not self.routes.routable(task):
            raise no_channel(spec.model)
        async with self._db.read() as session:
            if await repo.get(session, spec.id) is not None:
                raise ApiError(409, f"A task with the id {spec.id} exists.", code="task_exists")
        bank = self._state.accountant.bank
        await bank.reserve_durable(Hold(task.hold_id, spec.user_id, spec.token_id, spec.cost))
        try:
            async with self._db.write() as session:
                await repo.insert(
                    session,
                    {**values, "lease_owner": self._owner(), "lease_until": until, "next_poll_at": until},
                )
        except BaseException as exc:
            await asyncio.shield(bank.refund_by_id(task.hold_id, "the task could not be recorded"))
            if isinstance(exc, IntegrityError):
                raise ApiError(409, f"A task with the id {spec.id} exists.", code="task_exists") from None
            raise
        self._run_here(task)
        return task

    async def get(self, task_id: str, user_id: int | None = None) -> TaskView | None:
        async with self._db.read() as session:
            task = await repo.get(session, task_id)
        if task is None or (user_id is not None and (task.user_id != user_id or task.deleted_at is not None)):
            return None
        return task

    async def get_many(self, task_ids: list[str], user_id: int | None = None) -> list[TaskView]:
        async with self._db.read() as session:
            found = await repo.get_many(session, task_ids)
        return [
            t
            for i in task_ids
            if (t := found.get(i)) is not None
            and (user_id is None or (t.user_id == user_id and t.deleted_at is None))
        ]

    async def list_tasks(
        self, filters: TaskFilter, page: int = 1, per_page: int = 50
    ) -> tuple[list[TaskView], int]:
        async with self._db.read() as session:
            return await repo.page(session, filters, page, per_page)

    async def seek(
        self, filters: TaskFilter, after: TaskView | None, limit: int, ascending: bool = False
    ) -> tuple[list[TaskView], bool]:
        async with self._db.read() as session:
            return await repo.seek(session, filters, after, limit, ascending)

    async def _take(
        self,
        task_id: str,
        user_id: int | None,
        change: Callable[[TaskView], dict[str, Any]],
        note: str,
        want: str | None,
    ) -> TaskView:
        """Change an open task from outside its worker (whose next write then fails), claiming
        it here, and run it here."""
        for _ in range(10):
            task = await self.get(task_id, user_id)
            if task is None:
                raise ApiError(404, f"No task {task_id}.", code="not_found")
            if task.done or (want is not None and task.status != want):
                code = "task_finished" if task.done else "task_not_waiting"
                raise ApiError(409, f"The task {task_id} is {task.status}.", code=code)
            until = now_ms() + self._lease_ms
            claim = {"lease_owner": self._owner(), "lease_until": until, "next_poll_at": until}
            after = await self.recorder.change(task, {**change(task), **claim}, None, note)
            if after is not None:
                self._run_here(after)
                return after
        raise ApiError(409, f"The task {task_id} keeps changing; try again.", code="task_busy")

    async def cancel(self, task_id: str, user_id: int | None = None) -> TaskView:
        return await self._take(task_id, user_id, lambda task: cancelled(), "cancelled", None)

    async def delete(self, task_id: str, user_id: int | None = None) -> TaskView:
        task = await self.get(task_id, user_id)
        if task is None or task.deleted_at is not None:  # (an owner's get hides it already)
            raise ApiError(404, f"No task {task_id}.", code="not_found")
        if not task.done:
            try:
                task = await self.cancel(task_id, user_id)
            except ApiError as exc:
                if exc.code != "task_finished":  # it ended meanwhile: deleted all the same
                    raise
        at = now_ms()
        async with self._db.write() as session:
            if not await repo.mark_deleted(session, task_id, at):
                raise ApiError(404, f"No task {task_id}.", code="not_found")  # a concurrent delete won
        current = await self.get(task_id)
        return current if current is not None else replace(task, deleted_at=at)

    async def resume(self, task_id: str, patch: dict[str, Any], user_id: int | None = None) -> TaskView:
        def change(task: TaskView) -> dict[str, Any]:
            return {"status": QUEUED, "request": {**task.request, **patch}}

        return await self._take(task_id, user_id, change, "resumed", WAITING)

    async def poll_now(self, task_id: str) -> bool:
        until = now_ms() + self._lease_ms
        async with self._db.write() as session:
            row = (
                await session.execute(
                    update(repo.T)
                    .where(
                        repo.T.c.id == task_id,
                        repo.T.c.status == RUNNING,
                        repo.T.c.lease_owner.is_(None),
                        repo.T.c.next_poll_at.is_not(None),
                    )
                    .values(lease_owner=self._owner(), lease_until=until, next_poll_at=until)
                    .returning(*repo.T.c)
                )
            ).first()
        if row is None:
            return False
        self._run_here(repo.view(row))
        return True

    async def watch(self, task_id: str, interval_s: float = 1.0) -> AsyncIterator[TaskView]:
        event = asyncio.Event()
        self._watchers.setdefault(task_id, set()).add(event)
        try:
            seen = -1
            while True:
                event.clear()
                task = await self.get(task_id)
                if task is None:
                    return
                if task.version != seen:
                    seen = task.version
                    yield task
                if task.done:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval_s):
                        await event.wait()
        finally:
            watchers = self._watchers.get(task_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[task_id]

    async def deliveries(self, task_id: str) -> list[Delivery]:
        async with self._db.read() as session:
            return await deliveries.for_task(session, task_id)

    async def retry_delivery(self, delivery_id: int) -> Delivery:
        async with self._db.write() as session:
            delivery = await deliveries.retry(session, delivery_id, now_ms())
        self.notifier.due_at(now_ms())
        return delivery
