"""Background loops that run one step every few seconds, and stopping them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("aitre")


def every(
    seconds: float,
    step: Callable[[], Awaitable[Any]],
    name: str,
    failed: str,
    wake: asyncio.Event | None = None,
) -> asyncio.Task[None]:
    """Run `step` every `seconds` (or as soon as `wake` is set) until cancelled; a failing step
    is logged (`failed`) and the loop goes on: the next round may well succeed."""

    async def loop() -> None:
        while True:
            if wake is None:
                await asyncio.sleep(seconds)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await wake.wait()
                wake.clear()
            try:
                await step()
            except Exception:
                log.exception(failed)

    return asyncio.get_running_loop().create_task(loop(), name=name)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
