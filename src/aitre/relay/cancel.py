"""Cancel work when the client goes away before its answer started.

While the relay waits for an upstream (a slow completion, a Flux poll), a task listens for the
client's `http.disconnect` and cancels the work: the upstream connection is closed at once (no
orphaned generation), and the request is recorded as 499 and refunded. Streams have their own
watcher once they have started (`streaming.StreamResponse`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import Receive

from aitre.errors import ApiError


class ClientGone(ApiError):
    def __init__(self) -> None:
        super().__init__(499, "The client closed the connection.", code="client_closed_request")


@contextlib.asynccontextmanager
async def cancel_on_disconnect(receive: Receive | None) -> AsyncIterator[None]:
    if receive is None:
        yield
        return
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientGone() from None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
