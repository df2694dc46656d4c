"""Cancel work when the client goes away before its answer started.

While the relay waits for an upstream (a slow completion, a Flux poll), a watcher listens for
the client's `http.disconnect` and cancels the work: the upstream connection is closed at once
(no orphaned generation) and the request is recorded as 499 and refunded. Streams have their own
watcher once they have started (`streaming.StreamResponse`).

The watcher is only started when the work is still running after a short delay: most requests
finish sooner, and then cost no extra task at all (this is on the hot path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from aitre.errors import ApiError

T = TypeVar("T")
# A request still running after this long gets a watcher. Shorter would arm it for ordinary
# requests queued under load (a task and a receive() each); longer would let an abandoned request
# run on that much longer.
ARM_AFTER = 0.5  # seconds


class DisconnectWatch:
    """Cancels `task` when the client disconnects, watching only from `ARM_AFTER` on.

    Cancelling is only ever observed where the task is suspended, inside the watched work, so a
    result the work already produced is never thrown away. Call `stop()` when the work is over.
    """

    def __init__(self, receive: Receive, task: asyncio.Task[Any], delay: float = ARM_AFTER) -> None:
        self._receive = receive
        self._task = task
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False
        self.stopped = False
        self._timer = asyncio.get_running_loop().call_later(delay, self._arm)

    def _arm(self) -> None:
        if not self.stopped:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.stopped:
                    self.gone = True
                    self._task.cancel()
                return

    def stop(self) -> None:
        self.stopped = True
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


class ClientGone(ApiError):
    def __init__(self) -> None:
        super().__init__(499, "The client closed the connection.", code="client_closed_request")


async def unless_disconnected(receive: Receive | None, work: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    if receive is None or task is None:
        return await work
    watch = DisconnectWatch(receive, task)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        task.uncancel()
        raise ClientGone() from None
    finally:
        watch.stop()
