"""A client that stops reading a streamed answer.

Sending to a client waits while its socket is full (uvicorn awaits the transport's drain above
its high-water mark), and all that time the stream holds its upstream connection, its slot in
the pool and its buffers: a client that never reads would hold them forever. `StallWatch`
bounds that wait. One timer per stream, re-armed as it fires, checks whether a send has been
waiting `seconds`; if one has, it cancels the task that serves the stream, which then hangs up
on the client (`hang_up`) and ends like a client that went away. A send only notes when it
starts and ends (a clock read), so a stream that flows arms no timer per block.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Message, Scope, Send

from aitre.config import Settings

DEFAULT_SECONDS: float = Settings.model_fields["client_write_timeout"].default


def write_timeout(scope: Scope) -> float:
    """The gateway's `client_write_timeout` (its state is in the scope), else the default."""
    settings = getattr(scope.get("aitre.state"), "settings", None)
    value = getattr(settings, "client_write_timeout", None)
    return float(value) if value is not None else DEFAULT_SECONDS


async def hang_up(scope: Scope, send: Send) -> None:
    """Drop the client's connection now, unsent bytes and all: a plain close would wait for a
    client that does not read to take them first. Needs the server's `aitre.abort`
    (`server_protocol`); under another server the connection is closed when the app returns."""
    abort = scope.get("aitre.abort")
    if abort is None:
        return
    abort()
    # The response's end, for the server's books (else it logs one left unfinished): nothing is
    # written; the send returns once the server has seen the connection go.
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class StallWatch:
    """Cancels `task` when one of the sends made through `send` waits `seconds` (0: never)."""

    __slots__ = ("_loop", "_seconds", "_task", "_timer", "since", "stalled")

    def __init__(self, task: asyncio.Task[Any], seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = task
        self._seconds = seconds
        self.since = 0.0  # when the send under way started; 0: none is
        self.stalled = False
        self._timer = self._loop.call_later(seconds, self._check) if seconds > 0 else None

    async def send(self, send: Send, message: Message) -> None:
        self.since = self._loop.time()
        try:
            await send(message)
        finally:
            self.since = 0.0

    def _check(self) -> None:
        since = self.since
        waited = self._loop.time() - since if since else 0.0
        if waited >= self._seconds:
            self.stalled = True
            self._timer = None
            self._task.cancel()
            return
        self._timer = self._loop.call_later(self._seconds - waited, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def seconds(self) -> float:
        return self._seconds
