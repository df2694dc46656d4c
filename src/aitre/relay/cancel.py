"""Cancel work when the client goes away before its answer started.

While the relay waits for an upstream (a slow completion, a Flux poll), the work runs as its own
task beside one that listens for the client's `http.disconnect`. If the client leaves first the
work is cancelled: the upstream connection is closed at once (no orphaned generation) and the
request is recorded as 499 and refunded. If the work finishes first its result stands, even if
the client leaves a moment later (a stream then notices through its own watcher).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from aitre.errors import ApiError

T = TypeVar("T")


class ClientGone(ApiError):
    def __init__(self) -> None:
        super().__init__(499, "The client closed the connection.", code="client_closed_request")


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(receive: Receive | None, work: Coroutine[Any, Any, T]) -> T:
    if receive is None:
        return await work
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
        raise ClientGone()
    return task.result()
