"""Black Forest Labs tasks in flight: a bounded LRU, since a client may never poll again."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field


@dataclass(slots=True)
class BflTask:
    id: str
    model: str
    prompt: str
    seed: int
    final_status: str  # Ready | Request Moderated | Error
    started: float
    pending_polls: int
    image: asyncio.Task[str] | None = None  # the served file's name, once rendered
    polls: int = 0
    ended: float = 0.0


@dataclass(slots=True)
class TaskBook:
    max_tasks: int = 1024
    _tasks: collections.OrderedDict[str, BflTask] = field(default_factory=collections.OrderedDict)

    def add(self, task: BflTask) -> None:
        self._tasks[task.id] = task
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)

    def get(self, task_id: str) -> BflTask | None:
        task = self._tasks.get(task_id)
        if task is not None:
            self._tasks.move_to_end(task_id)
        return task
