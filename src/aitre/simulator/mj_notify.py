"""notifyHook callbacks: a task that names a hook gets a small driver that wakes at each change
of its phase and POSTs the task's JSON there, as midjourney-proxy does on every status or
progress change. Best effort: a hook that fails or is slow is skipped, never retried, and
when a delivery outlasts several changes only the newest state is sent."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson

from aitre.simulator.mj import MjState, MjTask

TIMEOUT = aiohttp.ClientTimeout(total=5)


async def _post(state: MjState, url: str, body: bytes) -> None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError, OSError):
        async with (
            state.sending,
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp,
        ):
            await resp.read()


async def _drive(state: MjState, task: MjTask) -> None:
    sent: tuple[str, str] | None = None
    for due in task.changes():
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if task.modal or task.notify_hook is None:
            return
        now = max(time.time(), due)  # the loop's clock may wake a little before the wall clock
        ph = task.phase(now)
        if (ph.status, ph.progress) != sent:
            sent = (ph.status, ph.progress)
            await _post(state, task.notify_hook, orjson.dumps(task.as_json(now)))


def start(state: MjState, task: MjTask) -> None:
    """Call the task's hook at each change from now on (replacing an earlier driver, as when a
    MODAL task is submitted)."""
    if task.driver is not None:
        task.driver.cancel()
        task.driver = None
    if not task.notify_hook or task.no_callback or task.modal:
        return
    driver = asyncio.get_running_loop().create_task(_drive(state, task))
    state.background.add(driver)
    task.driver = driver

    def done(finished: asyncio.Task[None]) -> None:
        state.background.discard(finished)
        if task.driver is finished:
            task.driver = None  # a finished driver is dead weight on a task kept for days

    driver.add_done_callback(done)
