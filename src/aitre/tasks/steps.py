"""What a worker does with the tasks it claimed: submit, look up after an interrupted submit, poll,
keep the result, time out, close the books.

A submit that may have reached the upstream is never repeated blindly: the task is `submitting`
(with its `submit_key`) before the upstream is called, and a worker that finds a task still
`submitting` (its worker died, or the call broke without an answer) asks the protocol to `lookup`
that key first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.adapters.base import Retryable
from aitre.channels.model import ChannelInfo
from aitre.store.models import now_ms
from aitre.tasks import repo
from aitre.tasks.changes import Recorder
from aitre.tasks.ending import Ender
from aitre.tasks.protocol import (
    CANCELLED,
    CANCELLED_CODE,
    FAILED,
    NO_CHANNEL,
    QUEUED,
    RUNNING,
    SUBMIT_UNCERTAIN,
    SUBMITTING,
    SUCCEEDED,
    TERMINAL,
    TIMEOUT,
    UPSTREAM_FAILED,
    WAITING,
    LookupUnsupported,
    Polled,
    Submitted,
    TaskContext,
    TaskProtocol,
    TaskRefused,
    TaskView,
)
from aitre.tasks.registry import TaskRegistry
from aitre.tasks.routing import NoRoute, Routes

log = logging.getLogger(__name__)
_CANCEL_TIMEOUT_S = 15.0


@dataclass(slots=True)
class One:
    owner: str
    task: TaskView


@dataclass(slots=True)
class Poll:
    owner: str
    channel: ChannelInfo
    protocol: TaskProtocol
    tasks: list[TaskView]


Unit = One | Poll


def _merged(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    return old if not new else {**old, **new}


def _progress(value: int) -> int:
    return max(0, min(100, int(value)))


class Runner:
    def __init__(
        self,
        ctx: TaskContext,
        sessions: async_sessionmaker[AsyncSession],
        registry: TaskRegistry,
        routes: Routes,
        recorder: Recorder,
        ender: Ender,
        due: Callable[[int], None],
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self._sessions = sessions
        self._due = due
        self._registry = registry
        self._routes = routes
        self._rec = recorder
        self._ender = ender
        self._settings = settings
        self._calls = asyncio.Semaphore(max(1, settings.task_concurrency))
        self._lease_ms = int(settings.task_lease_seconds * 1000)
        self.active: dict[str, str] = {}  # task id -> the owner it was claimed as (lease renewal)
        self.busy = asyncio.Event()  # set while tasks are worked on here

    # --- units ---------------------------------------------------------------------------------
    def units(self, owner: str, now: int, rows: Sequence[Any]) -> list[tuple[Unit, int]]:
        """Claimed rows as units of work: running tasks polled together per channel (in the
        protocol's batches), everything else one by one."""
        out: list[tuple[Unit, int]] = []
        polls: dict[int, tuple[ChannelInfo, TaskProtocol, list[TaskView]]] = {}
        channels = self._routes.by_id()
        for row in rows:
            task = repo.view(row)
            channel = channels.get(task.channel_id) if task.channel_id is not None else None
            protocol = self._registry.protocol_for(channel, task) if channel is not None else None
            if task.status != RUNNING or now >= task.deadline_at or channel is None or protocol is None:
                out.append((One(owner, task), 1))
                continue
            polls.setdefault(channel.id, (channel, protocol, []))[2].append(task)
        for channel, protocol, tasks in polls.values():
            size = max(1, protocol.poll_batch)
            for start in range(0, len(tasks), size):
                batch = tasks[start : start + size]
                out.append((Poll(owner, channel, protocol, batch), len(batch)))
        return out

    async def handle(self, unit: Unit) -> None:
        ids = [unit.task.id] if isinstance(unit, One) else [t.id for t in unit.tasks]
        for task_id in ids:
            self.active[task_id] = unit.owner
        self.busy.set()
        try:
            if isinstance(unit, One):
                await self._one(unit.owner, unit.task)
            else:
                await self._poll(unit.owner, unit.channel, unit.protocol, unit.tasks)
        finally:
            for task_id in ids:
                self.active.pop(task_id, None)

    async def _one(self, owner: str, task: TaskView) -> None:
        if task.status in TERMINAL:
            await self.finish(task)
        elif now_ms() >= task.deadline_at:
            await self._timeout(owner, task)
        elif task.status == QUEUED:
            await self._submit(owner, task)
        elif task.status == SUBMITTING:
            await self._recover(owner, task)
        elif task.status == RUNNING:
            found = self._routes.on_channel(task)
            if isinstance(found, NoRoute):
                await self._fail(owner, task, found.message, NO_CHANNEL)
            else:
                await self._poll(owner, found[0], found[1], [task])
        else:  # WAITING: claimed at its deadline only, or by a race with `resume`
            await self._release(owner, task, task.deadline_at)

    # --- submitting ----------------------------------------------------------------------------
    async def _submit(self, owner: str, task: TaskView) -> None:
        found = self._routes.choose(task)
        if isinstance(found, NoRoute):
            if found.final:
                await self._fail(owner, task, found.message, NO_CHANNEL)
            else:
                await self._release(owner, task, now_ms() + self._pause(task))
            return
        channel, protocol = found
        sending = await self._rec.change(
            task,
            {
                "status": SUBMITTING,
                "channel_id": channel.id,
                "submit_key": secrets.token_hex(16),
                "attempts": task.attempts + 1,
                "started_at": task.started_at or now_ms(),
            },
            owner,
            f"submitting to channel {channel.id}",
            {"channel_id": channel.id},
        )
        if sending is not None:
            await self._send(owner, sending, channel, protocol)

    async def _send(self, owner: str, task: TaskView, channel: ChannelInfo, protocol: TaskProtocol) -> None:
        try:
            async with self._calls:
                submitted = await protocol.submit(self.ctx, channel, task)
        except TaskRefused as refused:
            await self._fail(owner, task, refused.message, refused.code)
        except Retryable as retry:
            self.ctx.state.health.failure(channel.id, 0.0, retry.error.message)
            await self._retry_elsewhere(owner, task, channel, retry.error.message)
        except Exception as exc:
            # It may have reached the upstream: the task stays `submitting`, to be looked up.
            log.warning(
                "task %s: submit to channel %s broke (%s); looking it up later", task.id, channel.id, exc
            )
            await self._release(owner, task, now_ms() + self._pause(task), f"submit broke: {exc}"[:300])
        else:
            await self._accept(owner, task, channel, protocol, submitted)

    async def _retry_elsewhere(self, owner: str, task: TaskView, channel: ChannelInfo, message: str) -> None:
        if task.attempts >= self._settings.task_submit_attempts:
            await self._fail(owner, task, f"no upstream took the task: {message}", UPSTREAM_FAILED)
            return
        values: dict[str, Any] = {"status": QUEUED, "lease_owner": None, "lease_until": None}
        values["next_poll_at"] = min(now_ms() + self._pause(task), task.deadline_at)
        if task.channel_id is not None and not task.channel_pinned:
            values["channel_id"] = None
        changed = await self._rec.change(
            task, values, owner, f"channel {channel.id}: {message}", {"channel_id": channel.id, "retry": True}
        )
        if changed is not None:
            self._due(values["next_poll_at"])

    async def _recover(self, owner: str, task: TaskView) -> None:
        found = self._routes.on_channel(task)
        if isinstance(found, NoRoute):
            await self._fail(
                owner, task, f"the submit may have reached the upstream: {found.message}", SUBMIT_UNCERTAIN
            )
            return
        channel, protocol = found
        try:
            async with self._calls:
                there = await protocol.lookup(self.ctx, channel, task)
        except LookupUnsupported:
            message = (
                "the submit was interrupted and the upstream cannot say whether it arrived; not sent again"
            )
            await self._fail(owner, task, message, SUBMIT_UNCERTAIN)
            return
        except Exception as exc:
            await self._release(owner, task, now_ms() + self._pause(task), f"lookup failed: {exc}"[:300])
            return
        if there is not None:
            await self._accept(
                owner, task, channel, protocol, there, "found upstream after an interrupted submit"
            )
            return
        again = await self._rec.change(
            task,
            {"attempts": task.attempts + 1},
            owner,
            "not found upstream: submitting again",
            {"channel_id": channel.id},
        )
        if again is not None:
            await self._send(owner, again, channel, protocol)

    async def _accept(
        self,
        owner: str,
        task: TaskView,
        channel: ChannelInfo,
        protocol: TaskProtocol,
        sub: Submitted,
        note: str = "",
    ) -> None:
        self.ctx.state.health.success(channel.id, 0.0)
        polled = Polled(task.id, sub.status, sub.progress, sub.result, sub.error, sub.poll_after_s)
        await self._apply(
            owner, task, channel, protocol, polled, {"upstream_id": sub.upstream_id[:128]}, note
        )

    # --- polling -------------------------------------------------------------------------------
    async def _poll(
        self, owner: str, channel: ChannelInfo, protocol: TaskProtocol, tasks: list[TaskView]
    ) -> None:
        try:
            async with self._calls:
                answers = await protocol.poll(self.ctx, channel, tasks)
        except Exception as exc:
            log.warning("polling %d tasks on channel %s failed: %s", len(tasks), channel.id, exc)
            await self._reschedule(owner, tasks, backoff=True)
            return
        found = {p.task_id: p for p in answers}
        quiet = [t for t in tasks if t.id not in found]
        for task in tasks:
            polled = found.get(task.id)
            if polled is None:
                continue
            if self._same(task, polled):
                quiet.append(task)
            else:
                await self._apply(owner, task, channel, protocol, polled)
        await self._reschedule(
            owner, quiet, hints={t.id: found[t.id].poll_after_s for t in quiet if t.id in found}
        )

    @staticmethod
    def _same(task: TaskView, p: Polled) -> bool:
        unchanged = p.result is None or all(task.result.get(k) == v for k, v in p.result.items())
        return p.status == task.status and _progress(p.progress) == task.progress and unchanged

    async def _apply(
        self,
        owner: str,
        task: TaskView,
        channel: ChannelInfo,
        protocol: TaskProtocol,
        p: Polled,
        extra: dict[str, Any] | None = None,
        note: str = "",
    ) -> None:
        values: dict[str, Any] = dict(extra or {})
        values["result"] = _merged(task.result, p.result)
        if p.status == SUCCEEDED:
            await self._succeed(owner, task, channel, protocol, p, values)
            return
        if p.status in (FAILED, CANCELLED):
            code = UPSTREAM_FAILED if p.status == FAILED else CANCELLED_CODE
            ended = await self._ender.end(
                task, owner, p.status, p.error or "the upstream failed the task", code, values
            )
            if ended is not None:
                await self.finish(ended)
            else:
                await self._lost(task, channel, protocol, values)
            return
        now = now_ms()
        values.update(status=p.status, progress=_progress(p.progress), lease_owner=None, lease_until=None)
        values["next_poll_at"] = (
            task.deadline_at if p.status == WAITING else self._next_poll(task, now, True, p.poll_after_s)
        )
        if await self._rec.change(task, values, owner, note) is None:
            await self._lost(task, channel, protocol, values)
        else:
            self._due(values["next_poll_at"])

    async def _succeed(
        self,
        owner: str,
        task: TaskView,
        channel: ChannelInfo,
        protocol: TaskProtocol,
        p: Polled,
        values: dict[str, Any],
    ) -> None:
        done = replace(task, result=values["result"], upstream_id=values.get("upstream_id", task.upstream_id))
        try:
            async with self._calls:
                stored = await protocol.fetch_result(self.ctx, channel, done)
        except Exception as exc:
            log.warning("task %s: keeping its result failed (%s); trying again", task.id, exc)
            await self._release(
                owner, task, now_ms() + self._pause(task), f"result not kept yet: {exc}"[:300], values
            )
            return
        values["media"] = [{"name": m.name, "content_type": m.content_type, "size": m.size} for m in stored]
        if p.cost is not None:
            values["cost"] = max(0, p.cost)
        ended = await self._ender.end(task, owner, SUCCEEDED, values=values, note="succeeded")
        if ended is not None:
            await self.finish(ended)
        else:
            await self._lost(task, channel, protocol, values)

    async def _reschedule(
        self,
        owner: str,
        tasks: list[TaskView],
        backoff: bool = False,
        hints: dict[str, float | None] | None = None,
    ) -> None:
        """Tasks that did not change: due again later (one statement for all of them)."""
        if not tasks:
            return
        now = now_ms()
        due = {t.id: self._next_poll(t, now, False, (hints or {}).get(t.id), backoff) for t in tasks}
        async with self._sessions() as session, session.begin():
            await repo.reschedule(session, owner, due)
        self._due(min(due.values()))

    def _next_poll(
        self, task: TaskView, now: int, changed: bool, hint: float | None, backoff: bool = False
    ) -> int:
        """Soon after a change, less often the longer a task stays the same; the upstream's
        hint wins within the bounds; never past the deadline."""
        s = self._settings
        if hint is not None:
            pause = hint
        else:
            quiet_s = 0.0 if changed else (now - task.updated_at) / 1000
            pause = quiet_s / 2 * (2 if backoff else 1)
        pause = min(max(pause, s.task_poll_min_seconds), s.task_poll_max_seconds)
        return min(now + int(pause * 1000), task.deadline_at)

    def _pause(self, task: TaskView) -> int:
        """Before another try after a failure (ms): doubling with the tries, within the poll bounds."""
        s = self._settings
        pause = min(s.task_poll_min_seconds * 2 ** min(task.attempts, 10), s.task_poll_max_seconds)
        return int(pause * 1000)

    # --- endings -------------------------------------------------------------------------------
    async def _fail(self, owner: str, task: TaskView, message: str, code: str) -> None:
        ended = await self._ender.end(task, owner, FAILED, message, code)
        if ended is not None:
            await self.finish(ended)

    async def _timeout(self, owner: str, task: TaskView) -> None:
        seconds = (task.deadline_at - task.created_at) / 1000
        ended = await self._ender.end(
            task, owner, FAILED, f"the task did not finish within {seconds:g} s", TIMEOUT
        )
        if ended is not None:
            await self.finish(ended)

    async def finish(self, task: TaskView) -> None:
        """An ended task: ask the upstream to stop it when it was cut short (timeout, cancel),
        then close its books. Either may run again after a crash: both are safe to repeat."""
        if task.billed_at is not None:
            return
        if task.error_code in (TIMEOUT, CANCELLED_CODE) and task.upstream_id:
            await self.cancel_upstream(task)
        await self._ender.bill(task)

    async def cancel_upstream(self, task: TaskView) -> None:
        found = self._routes.on_channel(task)
        if isinstance(found, NoRoute):
            return
        try:
            async with asyncio.timeout(_CANCEL_TIMEOUT_S), self._calls:
                await found[1].cancel(self.ctx, found[0], task)
        except Exception as exc:
            log.info("task %s: the upstream was not told to stop (%s)", task.id, exc)

    async def _lost(
        self, task: TaskView, channel: ChannelInfo, protocol: TaskProtocol, values: dict[str, Any]
    ) -> None:
        """Our change lost to another (a cancel, a worker that took over after our lease ran out).
        A job we just made upstream is nobody's then: keep its id where the row has none, and ask
        the upstream to stop it unless the task is running there under that id."""
        upstream_id = values.get("upstream_id")
        if not upstream_id or upstream_id == task.upstream_id:
            return
        async with self._sessions() as session, session.begin():
            kept = await repo.keep_upstream_id(session, task.id, upstream_id)
            current = await repo.get(session, task.id)
        if current is not None and (current.status in TERMINAL or not kept):
            await self.cancel_upstream(replace(task, upstream_id=upstream_id))

    async def _release(
        self, owner: str, task: TaskView, due: int, note: str = "", values: dict[str, Any] | None = None
    ) -> None:
        out: dict[str, Any] = {
            "lease_owner": None,
            "lease_until": None,
            "next_poll_at": min(due, task.deadline_at),
        }
        if values and "upstream_id" in values:
            out["upstream_id"] = values["upstream_id"]
        if await self._rec.change(task, out, owner, note) is not None:
            self._due(out["next_poll_at"])
