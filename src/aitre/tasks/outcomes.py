"""What a worker does with what an upstream said: a poll's answer (or a submit's) applied to the
task, a finished task's files kept, the task ended and its books closed, the next poll scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aitre.channels.model import ChannelInfo
from aitre.store.models import now_ms
from aitre.tasks import repo
from aitre.tasks.changes import Recorder
from aitre.tasks.db import TaskDb
from aitre.tasks.ending import Ender
from aitre.tasks.protocol import (
    CANCELLED,
    CANCELLED_CODE,
    FAILED,
    SUCCEEDED,
    TERMINAL,
    TIMEOUT,
    UPSTREAM_FAILED,
    WAITING,
    Polled,
    TaskContext,
    TaskProtocol,
    TaskRefused,
    TaskView,
)
from aitre.tasks.routing import NoRoute, Routes

log = logging.getLogger(__name__)
_CANCEL_TIMEOUT_S = 15.0


def _merged(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    return old if not new else {**old, **new}


def _progress(value: int) -> int:
    return max(0, min(100, int(value)))


class Outcomes:
    def __init__(
        self,
        ctx: TaskContext,
        db: TaskDb,
        routes: Routes,
        recorder: Recorder,
        ender: Ender,
        calls: asyncio.Semaphore,
        due: Callable[[int], None],
    ) -> None:
        self.ctx = ctx
        self._settings = ctx.settings
        self._db = db
        self._routes = routes
        self._rec = recorder
        self._ender = ender
        self._calls = calls  # upstream calls under way in this process, bounded
        self._due = due

    # --- polling -------------------------------------------------------------------------------
    async def poll(
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
                await self.apply(owner, task, channel, protocol, polled)
        await self._reschedule(
            owner, quiet, hints={t.id: found[t.id].poll_after_s for t in quiet if t.id in found}
        )

    @staticmethod
    def _same(task: TaskView, p: Polled) -> bool:
        unchanged = p.result is None or all(task.result.get(k) == v for k, v in p.result.items())
        return p.status == task.status and _progress(p.progress) == task.progress and unchanged

    async def apply(
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
        except TaskRefused as refused:  # the result can never be kept (too large): no use trying again
            await self.fail(owner, task, refused.message, refused.code)
            return
        except Exception as exc:
            log.warning("task %s: keeping its result failed (%s); trying again", task.id, exc)
            await self.release(
                owner, task, now_ms() + self.pause(task), f"result not kept yet: {exc}"[:300], values
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
        async with self._db.write() as session:
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

    def pause(self, task: TaskView) -> int:
        """Before another try after a failure (ms): doubling with the tries, within the poll bounds."""
        s = self._settings
        pause = min(s.task_poll_min_seconds * 2 ** min(task.attempts, 10), s.task_poll_max_seconds)
        return int(pause * 1000)

    # --- endings -------------------------------------------------------------------------------
    async def fail(self, owner: str, task: TaskView, message: str, code: str) -> None:
        ended = await self._ender.end(task, owner, FAILED, message, code)
        if ended is not None:
            await self.finish(ended)

    async def timeout(self, owner: str, task: TaskView) -> None:
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
        the upstream to stop it unless the task goes on (or succeeded) under that id."""
        upstream_id = values.get("upstream_id")
        if not upstream_id or upstream_id == task.upstream_id:
            return
        async with self._db.write() as session:
            await repo.keep_upstream_id(session, task.id, upstream_id)
            current = await repo.get(session, task.id)
        if current is None:
            return
        tracked = current.upstream_id == upstream_id and (
            current.status not in TERMINAL or current.status == SUCCEEDED
        )
        if not tracked:
            await self.cancel_upstream(replace(task, upstream_id=upstream_id))

    async def release(
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
