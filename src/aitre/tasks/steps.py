"""What a worker does with the tasks it claimed: submit, look up after an interrupted submit, poll
(what the answers do: `outcomes.py`), time out.

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
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.adapters.base import Retryable
from aitre.channels.model import ChannelInfo
from aitre.store.models import now_ms
from aitre.tasks import repo
from aitre.tasks.changes import Recorder
from aitre.tasks.ending import Ender
from aitre.tasks.outcomes import Outcomes
from aitre.tasks.protocol import (
    NO_CHANNEL,
    QUEUED,
    RUNNING,
    SUBMIT_UNCERTAIN,
    SUBMITTING,
    TERMINAL,
    UPSTREAM_FAILED,
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
        self._due = due
        self._registry = registry
        self._routes = routes
        self._rec = recorder
        self._settings = settings
        self._calls = asyncio.Semaphore(max(1, settings.task_concurrency))
        self._out = Outcomes(ctx, sessions, routes, recorder, ender, self._calls, due)
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
                await self._out.poll(unit.owner, unit.channel, unit.protocol, unit.tasks)
        finally:
            for task_id in ids:
                self.active.pop(task_id, None)

    async def _one(self, owner: str, task: TaskView) -> None:
        if task.status in TERMINAL:
            await self._out.finish(task)
        elif now_ms() >= task.deadline_at:
            await self._out.timeout(owner, task)
        elif task.status == QUEUED:
            await self._submit(owner, task)
        elif task.status == SUBMITTING:
            await self._recover(owner, task)
        elif task.status == RUNNING:
            found = self._routes.on_channel(task)
            if isinstance(found, NoRoute):
                await self._out.fail(owner, task, found.message, NO_CHANNEL)
            else:
                await self._out.poll(owner, found[0], found[1], [task])
        else:  # WAITING: claimed at its deadline only, or by a race with `resume`
            await self._out.release(owner, task, task.deadline_at)

    # --- submitting ----------------------------------------------------------------------------
    async def _submit(self, owner: str, task: TaskView) -> None:
        found = self._routes.choose(task)
        if isinstance(found, NoRoute):
            if found.final:
                await self._out.fail(owner, task, found.message, NO_CHANNEL)
            else:
                await self._out.release(owner, task, now_ms() + self._out.pause(task))
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
            await self._out.fail(owner, task, refused.message, refused.code)
        except Retryable as retry:
            self.ctx.state.health.failure(channel.id, 0.0, retry.error.message)
            await self._retry_elsewhere(owner, task, channel, retry.error.message)
        except Exception as exc:
            # It may have reached the upstream: the task stays `submitting`, to be looked up.
            log.warning(
                "task %s: submit to channel %s broke (%s); looking it up later", task.id, channel.id, exc
            )
            await self._out.release(
                owner, task, now_ms() + self._out.pause(task), f"submit broke: {exc}"[:300]
            )
        else:
            await self._accept(owner, task, channel, protocol, submitted)

    async def _retry_elsewhere(self, owner: str, task: TaskView, channel: ChannelInfo, message: str) -> None:
        if task.attempts >= self._settings.task_submit_attempts:
            await self._out.fail(owner, task, f"no upstream took the task: {message}", UPSTREAM_FAILED)
            return
        values: dict[str, Any] = {"status": QUEUED, "lease_owner": None, "lease_until": None}
        values["next_poll_at"] = min(now_ms() + self._out.pause(task), task.deadline_at)
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
            await self._out.fail(
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
            await self._out.fail(owner, task, message, SUBMIT_UNCERTAIN)
            return
        except Exception as exc:
            await self._out.release(
                owner, task, now_ms() + self._out.pause(task), f"lookup failed: {exc}"[:300]
            )
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
        await self._out.apply(
            owner, task, channel, protocol, polled, {"upstream_id": sub.upstream_id[:128]}, note
        )
