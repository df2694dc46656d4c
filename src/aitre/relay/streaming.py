"""Streaming an upstream SSE response to the client, as a plain ASGI app.

- Whole events only are forwarded (see `sse.EventSplitter`), as they arrive.
- The first event is awaited before the client gets a status line, so a failure before the
  first byte can still go to another channel or become a proper HTTP error.
- A failure after that ends the stream cleanly: an OpenAI error event, then `data: [DONE]`.
- A client that disconnects cancels the upstream read at once; the upstream connection is
  closed, not returned to the pool, so the upstream sees the hang-up too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson
from starlette.types import Message, Receive, Scope, Send

from aitre.errors import ApiError
from aitre.relay.sse import DONE, EventSplitter, StreamTap, iter_data
from aitre.relay.upstream import Timeouts, UpstreamFailure


@dataclass(slots=True)
class StreamOutcome:
    status: int = 200
    error: str = ""
    client_gone: bool = False


class UpstreamEvents:
    """Reads an upstream SSE body and yields blocks of whole events, tapped for usage."""

    def __init__(self, resp: aiohttp.ClientResponse, tap: StreamTap, timeouts: Timeouts) -> None:
        self.resp = resp
        self.tap = tap
        self._idle = timeouts.idle
        self._splitter = EventSplitter()
        self.eof = False

    async def next_block(self) -> bytes:
        """The next forwardable bytes; b"" at end of stream. Raises UpstreamFailure."""
        while not self.eof:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await self.resp.content.readany()
            except TimeoutError as exc:
                raise UpstreamFailure("timeout", f"upstream stream stalled for {self._idle:g}s") from exc
            except aiohttp.ClientPayloadError as exc:
                raise UpstreamFailure("protocol", "upstream stream was cut short") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamFailure("protocol", f"upstream stream failed: {exc}") from exc
            if not chunk:
                self.eof = True
                return self.tap.process(self._tail())
            block = self._splitter.feed(chunk)
            if block:
                out = self.tap.process(block)
                if out:
                    return out
        return b""

    def _tail(self) -> bytes:
        """A last event the upstream did not close with a blank line, if it is whole."""
        rest = self._splitter.pending.strip()
        if not rest:
            return b""
        payloads = iter_data(rest)
        if not payloads:
            return b""
        payload = payloads[-1]
        if payload != b"[DONE]":
            try:
                orjson.loads(payload)
            except orjson.JSONDecodeError:
                return b""  # cut inside a JSON object: drop it, the stream counts as truncated
        return rest + b"\n\n"

    def close(self, reuse: bool) -> None:
        if reuse:
            self.resp.release()
        else:
            self.resp.close()


class StreamResponse:
    """ASGI response that pumps `UpstreamEvents` to the client and reports how it ended."""

    def __init__(
        self,
        events: UpstreamEvents,
        first: bytes,
        headers: list[tuple[bytes, bytes]],
        on_close: Callable[[StreamOutcome], Awaitable[None]],
    ) -> None:
        self._events = events
        self._first = first
        self._headers = headers
        self._on_close = on_close
        self._finished = False
        self._client_gone = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, task))
        outcome = StreamOutcome()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._first, "more_body": True})
            outcome = await self._pump(send)
        except asyncio.CancelledError:
            if not self._client_gone:
                raise
            task.uncancel()
            outcome = StreamOutcome(status=499, error="client disconnected", client_gone=True)
        except OSError:  # the server reports a vanished client by failing the send
            outcome = StreamOutcome(status=499, error="client disconnected", client_gone=True)
        finally:
            self._finished = True
            watcher.cancel()
            self._events.close(reuse=outcome.status == 200 and self._events.eof)
            await self._on_close(outcome)

    async def _pump(self, send: Send) -> StreamOutcome:
        events, tap = self._events, self._events.tap
        outcome = StreamOutcome()
        try:
            while True:
                block = await events.next_block()
                if block:
                    await send({"type": "http.response.body", "body": block, "more_body": True})
                if events.eof:
                    break
        except UpstreamFailure as failure:
            outcome = StreamOutcome(status=502, error=failure.message)
        if outcome.status == 200 and not tap.done and not tap.finished:
            outcome = StreamOutcome(status=502, error="upstream ended the stream before it was complete")
        tail = b""
        if outcome.status != 200:
            err = ApiError(502, outcome.error, type="upstream_error", code="upstream_stream_error")
            tail = err.sse_event()
        if not tap.done:
            tail += DONE
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return outcome

    async def _watch_disconnect(self, receive: Receive, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    if not self._finished:
                        self._client_gone = True
                        task.cancel()
                    return
