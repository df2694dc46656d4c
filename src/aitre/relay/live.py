"""An SSE response fed by a coroutine while it works: for answers that take long to make (an
image, a video) but that the client asked to stream. The client gets its status line and first
chunk at once, a keep-alive comment whenever the work is quiet (so proxies do not cut the
connection), the work's chunks as they come, and the work is cancelled if the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.types import Message, Receive, Scope, Send

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

        async def emit(data: bytes) -> None:
            nonlocal last_sent
            async with lock:
                await send({"type": "http.response.body", "body": data, "more_body": True})
                last_sent = asyncio.get_running_loop().time()

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(self._keepalive / 2)
                if asyncio.get_running_loop().time() - last_sent >= self._keepalive:
                    await emit(KEEPALIVE)

        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        work = asyncio.create_task(self._work(emit))
        pinger = asyncio.create_task(keepalive())
        watcher = asyncio.create_task(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                finished = True
                work.result()
                async with lock:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                if self._on_gone is not None:
                    await self._on_gone()
        finally:
            pinger.cancel()
            watcher.cancel()
            if not finished:
                work.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
