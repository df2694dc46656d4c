"""Work a task protocol does in the background of one gateway process for its running tasks (a
`chat-video` upstream's answer stream being read, a local watermark removal), and what it has
found so far, for the engine's polls.

The engine's `submit` and `poll` must return quickly; this work takes minutes. So `submit` starts
a `Run` here and returns; the run keeps its progress and outcome in memory and asks the engine to
poll the task at once when they change (`TaskService.poll_now`); `poll` reads them.

A run lives in the process that started it, and the task's result names that process
(`runner`: the instance's journal id, stable for the process's life). A poll elsewhere (another
instance on PostgreSQL, the SQLite claimer among several workers) leaves a task alone while its
runner lives; once the runner is gone (a crash, a restart, a stop), the protocol decides: a chat
stream is lost for good (the task fails, refunded), a local removal is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from aitre.billing.recovery import db_now
from aitre.tasks.protocol import FAILED, RUNNING, SUCCEEDED, Polled

if TYPE_CHECKING:
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskView

log = logging.getLogger(__name__)
RUNNER = "runner"  # the key of the task's result that names the process running it
ERROR_CODE = "error_code"  # the key of the task's result that says why it failed
_POKE_EVERY_S = 0.5  # a progress change is told to the engine at most this often
_POKE_TRIES = 50  # an end is told again (0.2 s apart) while a worker holds the task


class RunFailed(Exception):
    """What ends a run as failed: `message` is shown to the client, `code` kept on the task."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(slots=True)
class Run:
    task_id: str
    status: str = RUNNING  # RUNNING, then SUCCEEDED or FAILED
    progress: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    code: str = ""
    job: asyncio.Task[None] | None = None
    _poked: float = 0.0
    _poking: asyncio.Task[None] | None = None

    def polled(self) -> Polled:
        progress = 100 if self.status == SUCCEEDED else min(99, self.progress)
        result = dict(self.result)
        if self.code:  # the engine records a poll's failure as `upstream_failed`: the reason goes here
            result[ERROR_CODE] = self.code
        return Polled(self.task_id, self.status, progress, result, self.error)


Work = Callable[[Run], Awaitable[None]]


class Runs:
    """The runs of one protocol in this process."""

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}

    def me(self, state: AppState) -> str:
        return state.instance.journal

    def get(self, task_id: str) -> Run | None:
        return self._runs.get(task_id)

    def start(self, state: AppState, task_id: str, work: Work) -> Run:
        """Run `work` in the background for the task (a run already there is cancelled)."""
        old = self._runs.pop(task_id, None)
        if old is not None and old.job is not None:
            old.job.cancel()
        run = Run(task_id)
        self._runs[task_id] = run
        run.job = asyncio.get_running_loop().create_task(
            self._guarded(state, run, work), name=f"run-{task_id}"
        )
        return run

    async def _guarded(self, state: AppState, run: Run, work: Work) -> None:
        try:
            await work(run)
            if run.status == RUNNING:
                raise RunFailed("the work ended without a result", "internal_error")
        except asyncio.CancelledError:
            run.status, run.error, run.code = FAILED, "stopped", "cancelled"
            raise
        except RunFailed as failed:
            run.status, run.error, run.code = FAILED, failed.message[:2000], failed.code
        except Exception as exc:
            log.exception("task %s: its background work failed", run.task_id)
            run.status, run.error, run.code = (
                FAILED,
                f"internal error: {type(exc).__name__}",
                "internal_error",
            )
        self.poke(state, run, final=True)

    def advance(self, state: AppState, run: Run, progress: int | None = None, **result: Any) -> None:
        """Progress (0..99) or news for the task's result: the engine is told soon."""
        changed = False
        if progress is not None and progress > run.progress:
            run.progress, changed = max(0, min(99, progress)), True
        for key, value in result.items():
            if run.result.get(key) != value:
                run.result[key], changed = value, True
        if changed:
            self.poke(state, run)

    def succeed(self, run: Run, **result: Any) -> None:
        run.result.update(result)
        run.status = SUCCEEDED

    def poke(self, state: AppState, run: Run, final: bool = False) -> None:
        """Ask the engine to poll the task now (throttled; an end is always told)."""
        now = time.monotonic()
        if run._poking is not None and not run._poking.done():
            if not final:
                return
            run._poking.cancel()
        if not final and now - run._poked < _POKE_EVERY_S:
            return
        run._poked = now
        run._poking = asyncio.get_running_loop().create_task(self._poke(state, run, final))

    async def _poke(self, state: AppState, run: Run, final: bool) -> None:
        for _ in range(_POKE_TRIES if final else 1):
            try:
                if await state.tasks.poll_now(run.task_id):
                    return
            except Exception as exc:  # the engine polls it anyway, later
                log.info("task %s: could not ask for a poll now (%s)", run.task_id, exc)
                return
            task = await state.tasks.get(run.task_id)
            if task is None or task.done or self._runs.get(run.task_id) is not run:
                return
            await asyncio.sleep(0.2)

    def take(self, task: TaskView) -> Polled | None:
        """This process's news of the task (None: it has no run for it). A failed run is forgotten
        once reported; a succeeded one when its result is kept (`forget`)."""
        run = self._runs.get(task.id)
        if run is None:
            return None
        if run.status == FAILED:
            self._runs.pop(task.id, None)
        return run.polled()

    def forget(self, task_id: str) -> None:
        self._runs.pop(task_id, None)

    async def cancel(self, task_id: str) -> None:
        run = self._runs.pop(task_id, None)
        if run is not None and run.job is not None:
            run.job.cancel()
            with contextlib.suppress(BaseException):
                await run.job

    async def close(self) -> None:
        """Stop every run (the gateway is stopping): their tasks are taken up, or failed, by the
        next process that polls them."""
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            if run.job is not None:
                run.job.cancel()
        for run in runs:
            if run.job is not None:
                with contextlib.suppress(BaseException):
                    await run.job
            if run._poking is not None:
                run._poking.cancel()

    async def runner_gone(self, state: AppState, task: TaskView) -> bool:
        """Whether the process that ran the task's work is gone (or it is this one, which has no
        run for it: its work was lost)."""
        runner = task.result.get(RUNNER)
        if not isinstance(runner, str) or runner == self.me(state):
            return True
        dead_ms = int(state.settings.instance_dead_seconds * 1000)
        async with state.sessions() as session:
            alive = await session.scalar(
                text(
                    "SELECT COUNT(*) FROM instances WHERE (id = :r OR id LIKE :like) "
                    "AND stopped_at IS NULL AND recovered_by IS NULL "
                    f"AND heartbeat_at >= {db_now(session)} - :dead"
                ),
                {"r": runner, "like": runner + ".%", "dead": dead_ms},
            )
        return not alive
