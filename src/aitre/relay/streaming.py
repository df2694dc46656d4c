"""Streaming an upstream response to the client, as a plain ASGI app.

- Bytes are forwarded as they arrive: whole SSE events for event streams (see
  `sse.EventSplitter`), raw chunks for binary answers (audio).
- The first block is awaited before the client gets a status line, so a failure before the
  first byte can still go to another channel or become a proper HTTP error.
- A failure after that ends an event stream cleanly (an OpenAI error event, then
  `data: [DONE]`); a binary stream is aborted, so the client sees an incomplete body rather than
  a short file it would take for whole.
- A client that disconnects cancels the upstream read at once; the upstream connection is
  closed, not returned to the pool, so the upstream sees the hang-up too. A client that stays
  but stops reading is treated the same once a send has waited `client_write_timeout`
  (`stall.StallWatch`), and the gateway hangs up on it.
- An event larger than `sse.MAX_EVENT_BYTES` ends an event stream as an upstream failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from starlette.types import Receive, Scope, Send

from aitre.errors import ApiError
from aitre.relay.cancel import DisconnectWatch
from aitre.relay.sse import DONE, EventSplitter, EventTooLarge, StreamTap, event_data, split_events
from aitre.relay.stall import StallWatch, hang_up, write_timeout
from aitre.relay.upstream import Response, Timeouts, UpstreamFailure

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StreamOutcome:
    status: int = 200
    error: str = ""
    client_gone: bool = False


class BlockSource(Protocol):
    eof: bool

    async def next_block(self) -> bytes: ...

    def complete(self) -> bool: ...

    def ending(self, failure: str | None) -> bytes | None: ...

    def close(self, reuse: bool) -> None: ...


class _UpstreamReader:
    def __init__(self, resp: Response, timeouts: Timeouts) -> None:
        self.resp = resp
        self._idle = timeouts.idle
        self.eof = False

    async def _read(self) -> bytes:
        return await self.resp.readany(self._idle)

    def close(self, reuse: bool) -> None:
        if reuse:
            self.resp.release()
        else:
            self.resp.close()


class UpstreamEvents(_UpstreamReader):
    """An upstream SSE body as blocks of whole events, tapped for usage."""

    def __init__(
        self, resp: Response, tap: StreamTap, timeouts: Timeouts, max_event: int | None = None
    ) -> None:
        super().__init__(resp, timeouts)
        self.tap = tap
        self._splitter = EventSplitter() if max_event is None else EventSplitter(max_event)

    async def next_block(self) -> bytes:
        """The next forwardable bytes; b"" at end of stream. Raises UpstreamFailure."""
        while not self.eof:
            chunk = await self._read()
            if not chunk:
                self.eof = True
                return self.tap.process(self._tail())
            try:
                block = self._splitter.feed(chunk)
            except EventTooLarge as exc:
                raise UpstreamFailure("protocol", str(exc)) from None
            if block:
                out = self.tap.process(block)
                if out:
                    return out
        return b""

    def _tail(self) -> bytes:
        """A last event the upstream did not close with a blank line, if it is whole."""
        rest = self._splitter.pending.strip()
        payload = event_data(split_events(rest)[-1]) if rest else None
        if payload is None:
            return b""
        if payload != b"[DONE]":
            try:
                orjson.loads(payload)
            except orjson.JSONDecodeError:
                return b""  # cut inside a JSON object: drop it, the stream counts as truncated
        return rest + b"\n\n"

    def complete(self) -> bool:
        return self.tap.done or self.tap.finished

    def ending(self, failure: str | None) -> bytes:
        tail = b""
        if failure is not None:
            tail = ApiError(502, failure, type="upstream_error", code="upstream_stream_error").sse_event()
        return tail + (b"" if self.tap.done else DONE)


class UpstreamBytes(_UpstreamReader):
    """An upstream binary body (audio), chunk by chunk."""

    def __init__(self, resp: Response, timeouts: Timeouts) -> None:
        super().__init__(resp, timeouts)
        self.size = 0

    async def next_block(self) -> bytes:
        if self.eof:
            return b""
        chunk = await self._read()
        if not chunk:
            self.eof = True
        self.size += len(chunk)
        return chunk

    def complete(self) -> bool:
        return self.eof

    def ending(self, failure: str | None) -> bytes | None:
        return None if failure is not None else b""


class StreamResponse:
    """ASGI response that pumps a `BlockSource` to the client and reports how it ended."""

    def __init__(
        self,
        source: BlockSource,
        first: bytes,
        headers: list[tuple[bytes, bytes]],
        on_close: Callable[[StreamOutcome], Awaitable[None]],
        write_timeout: float | None = None,
    ) -> None:
        self._source = source
        self._first = first
        self.raw_headers = headers
        self._on_close = on_close
        self._write_timeout = write_timeout  # None: the gateway's `client_write_timeout`
        self._closed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watch = DisconnectWatch(receive, task)
        seconds = self._write_timeout if self._write_timeout is not None else write_timeout(scope)
        stall = StallWatch(task, seconds)
        outcome = StreamOutcome()
        try:
            await stall.send(
                send, {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            await stall.send(send, {"type": "http.response.body", "body": self._first, "more_body": True})
            # The first block is the client's time to first token: let it leave before reading
            # on. Writes wait for the end of the loop turn (`server_protocol`), and a stream that
            # arrived whole would otherwise go out only after its last block and the books.
            flush = scope.get("aitre.flush")
            if flush is not None:
                flush()
            outcome = await self._pump(stall, send)
        except asyncio.CancelledError:
            if stall.stalled and not watch.gone:
                task.uncancel()
                error = f"client stopped reading: nothing taken for {seconds:g}s"
                outcome = StreamOutcome(status=499, error=error, client_gone=True)
                watch.stop()  # the hang-up is no news to it
                await hang_up(scope, send)
            elif not watch.gone:  # the server is stopping and its grace period ran out
                outcome = StreamOutcome(status=503, error="stream cut: the gateway was shutting down")
                raise
            else:
                task.uncancel()
                outcome = StreamOutcome(status=499, error="client disconnected", client_gone=True)
        except OSError:  # the server reports a vanished client by failing the send
            outcome = StreamOutcome(status=499, error="client disconnected", client_gone=True)
        finally:
            watch.stop()
            stall.stop()
            self._source.close(reuse=outcome.status == 200 and self._source.eof)
            await self._close_once(outcome)

    async def _close_once(self, outcome: StreamOutcome) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close(outcome)

    async def _pump(self, stall: StallWatch, send: Send) -> StreamOutcome:
        source = self._source
        outcome = StreamOutcome()
        try:
            while True:
                block = await source.next_block()
                if block:
                    await stall.send(send, {"type": "http.response.body", "body": block, "more_body": True})
                if source.eof:
                    break
        except UpstreamFailure as failure:
            outcome = StreamOutcome(status=502, error=failure.message)
        except (OSError, asyncio.CancelledError):
            raise  # the client went away, or the server is stopping: handled by the caller
        except Exception as exc:  # a bug must still end the stream and the books cleanly
            log.exception("relaying a stream failed")
            outcome = StreamOutcome(status=502, error=f"gateway error while streaming: {type(exc).__name__}")
        if outcome.status == 200 and not source.complete():
            outcome = StreamOutcome(status=502, error="upstream ended the stream before it was complete")
        # Settle (and journal) before the last byte: a client that got the whole answer has paid
        # for it even if the process dies the next instant.
        await self._close_once(outcome)
        tail = source.ending(outcome.error if outcome.status != 200 else None)
        if tail is None:
            # Binary body cut short: return without finishing the response, so the server drops
            # the connection and the client sees a truncated body, not a short file.
            return outcome
        await stall.send(send, {"type": "http.response.body", "body": tail, "more_body": False})
        return outcome
