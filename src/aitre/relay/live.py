"""An SSE response fed by a coroutine while it works: for answers that take long to make (an
image, a video) but that the client asked to stream. The client gets its status line and first
chunk at once, a keep-alive comment whenever the work is quiet (so proxies do not cut the
connection), the work's chunks as they come, and the work is cancelled if the client leaves, or
stops reading for `client_write_timeout` (then the gateway hangs up on it: `stall`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from aitre.relay.stall import StallWatch, hang_up, write_timeout

Emit = Callable[[bytes], Awaitable[None]]
Work = Callable[[Emit], Coroutine[Any, Any, None]]

KEEPALIVE = b": keep-alive\n\n"


class LiveStream:
    def __init__(
        self,
        work: Work,
        headers: list[tuple[bytes, bytes]],
        on_gone: Callable[[], Awaitable[None]] | None = None,
        keepalive_seconds: float = 10.0,
    ) -> None:
        self._work = work
        self.raw_headers = headers
        self._on_gone = on_gone
        self._keepalive = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = asyncio.Lock()
        last_sent = asyncio.get_running_loop().time()
        finished = False
        task = asyncio.current_task()
        assert task is not None
        # A send stuck in `emit` is in the work's task, but the watch cancels this one, which
        # then cancels the work.
        stall = StallWatch(task, write_timeout(scope))

        async def emit(data: bytes) -> None:
            nonlocal last_sent
            async with lock:
                await stall.send(send, {"type": "http.response.body", "body": data, "more_body": True})
                last_sent = asyncio.get_running_loop().time()

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(self._keepalive / 2)
                if asyncio.get_running_loop().time() - last_sent >= self._keepalive:
                    await emit(KEEPALIVE)

        work: asyncio.Task[None] | None = None
        helpers: list[asyncio.Task[None]] = []
        try:
            await stall.send(
                send, {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            work = asyncio.create_task(self._work(emit))
            watcher = asyncio.create_task(_wait_disconnect(receive))
            helpers = [asyncio.create_task(keepalive()), watcher]
            done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                finished = True
                work.result()
                async with lock:
                    await stall.send(send, {"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await self._gone(work)
        except asyncio.CancelledError:
            if not stall.stalled:
                raise
            task.uncancel()
            if work is not None:
                work.cancel()  # first: its sends would not wait once the client is gone
            await hang_up(scope, send)
            await self._gone(work)
        finally:
            stall.stop()
            for helper in helpers:
                helper.cancel()
            if work is not None and not finished:
                work.cancel()

    async def _gone(self, work: asyncio.Task[None] | None) -> None:
        if work is not None:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        if self._on_gone is not None:
            await self._on_gone()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
