"""Bytes made by a worker thread, handed to the event loop in fixed-size pieces as they appear,
with back-pressure: a slow client slows the encoder instead of filling memory."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable

PIECE = 12 * 1024
_DEPTH = 8  # pieces waiting for the client before the worker blocks
# A worker blocked this long on a client that reads nothing gives up, so no thread waits forever
# (for instance on a loop that is shutting down).
_PUT_TIMEOUT = 300.0

Work = Callable[[Callable[[bytes], None]], None]


class _Stopped(Exception):
    """The consumer went away: unwinds the worker at its next write."""


_DONE = object()


async def thread_pieces(work: Work, piece: int = PIECE) -> AsyncGenerator[bytes, None]:
    """Run `work(write)` in a thread and yield what it writes, `piece` bytes at a time (the last
    piece may be shorter). An exception in `work` is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(_DEPTH)
    stopped = threading.Event()
    pending = bytearray()

    def put(item: object) -> None:
        if stopped.is_set():
            raise _Stopped
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        try:
            future.result(_PUT_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise _Stopped from None

    def write(data: bytes) -> None:
        pending.extend(data)
        while len(pending) >= piece:
            put(bytes(pending[:piece]))
            del pending[:piece]

    def run() -> None:
        try:
            work(write)
            if pending:
                put(bytes(pending))
            put(_DONE)
        except _Stopped:
            pass
        except Exception as exc:
            with contextlib.suppress(Exception):
                put(exc)

    worker = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stopped.set()
        # Free the queue so a worker blocked on a full one wakes up, sees `stopped`, and ends.
        while not queue.empty():
            queue.get_nowait()
        if worker.done():
            worker.result()
