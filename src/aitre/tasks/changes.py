"""Recording a change of a task: the conditional update, its history entry, the notifyHook call
(in the same transaction: a change is never recorded without its call, nor called without
being recorded), and the in-process wake-ups of whoever watches the task."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.config import Settings
from aitre.media.store import MediaStore
from aitre.store.models import now_ms
from aitre.tasks import deliveries, repo
from aitre.tasks.protocol import TaskView
from aitre.tasks.registry import TaskRegistry

_VIEW = frozenset(f.name for f in fields(TaskView))


def _seen(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values a `TaskView` shows (leases and due times are the row's alone)."""
    return {k: v for k, v in values.items() if k in _VIEW}


def capped(history: list[dict[str, Any]], entry: dict[str, Any], cap: int) -> list[dict[str, Any]]:
    """`history` plus `entry`, at most `cap` long: the first entry (creation) and the latest."""
    out = [*history, entry]
    if len(out) > cap >= 2:
        out = [out[0], *out[len(out) - cap + 1 :]]
    return out


class Recorder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        registry: TaskRegistry,
        media: MediaStore,
        settings: Settings,
        changed: Callable[[TaskView, bool], None],
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._media = media
        self._settings = settings
        self._changed = changed  # (task, made a hook call): wakes watchers and the deliverer

    def hook(self, task: TaskView) -> tuple[str, bool] | None:
        """Where the task's changes are announced: its client's hook, else the operator's."""
        if task.notify_hook:
            return task.notify_hook, False
        if self._settings.task_notify_hook:
            return self._settings.task_notify_hook, True
        return None

    def prepare(
        self,
        task: TaskView,
        values: Mapping[str, Any],
        note: str = "",
        extra: Mapping[str, Any] | None = None,
        by: str | None = None,
    ) -> tuple[TaskView, dict[str, Any], bool]:
        """The task after the change, the values to write, and whether it makes a hook call.
        `by`: the instance whose worker made the change (kept in the history entry)."""
        now = now_ms()
        out = dict(values)
        out["updated_at"] = now
        after = replace(task, **_seen(out))
        moved = after.status != task.status or after.progress != task.progress
        if moved or note:
            entry: dict[str, Any] = {"at": now, "status": after.status, "progress": after.progress}
            if note:
                entry["note"] = note[:500]
            if extra:
                entry.update(extra)
            if by:
                entry["by"] = by
            out["history"] = capped(task.history, entry, self._settings.task_history_max)
        calls = moved and self.hook(after) is not None
        if calls:
            out["notify_seq"] = task.notify_seq + 1
        return replace(task, **_seen(out), version=task.version + 1), out, calls

    async def write(
        self,
        session: AsyncSession,
        task: TaskView,
        after: TaskView,
        out: dict[str, Any],
        calls: bool,
        owner: str | None,
    ) -> bool:
        """Within the caller's transaction."""
        if not await repo.write(session, task, out, owner):
            return False
        if calls:
            target = self.hook(after)
            assert target is not None
            body = orjson.dumps(self._registry.render(after, self._media))
            await deliveries.enqueue(session, after, target[0], target[1], body, after.updated_at)
        return True

    async def change(
        self,
        task: TaskView,
        values: Mapping[str, Any],
        owner: str | None,
        note: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> TaskView | None:
        """Write the change in its own transaction; the task as it is now, or None when the row
        moved on meanwhile (another worker, a cancel): nothing was written."""
        after, out, calls = self.prepare(task, values, note, extra, owner)
        assert self._sessions is not None, "made for `prepare` and `write` in the caller's transaction"
        async with self._sessions() as session, session.begin():
            written = await self.write(session, task, after, out, calls, owner)
        if not written:
            return None
        self._changed(after, calls)
        return after
