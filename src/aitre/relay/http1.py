"""One HTTP/1.1 connection to an upstream and the answers read from it: the wire half of the
gateway's own upstream client (`pool.py` keeps the connections).

Why not aiohttp's client, which the relay used before (and which still fetches client-given
URLs, `media.fetch`): on the benchmark machine one aiohttp request cost ~200 µs of CPU, this
client ~30 µs, and that difference was most of what the gateway spent per relayed request. The
parsing is httptools' (llhttp, the parser uvicorn uses for the other side); what is here is the
handling around it:

- bodies framed by Content-Length, chunked (header values compared as case-insensitive tokens),
  or the end of the connection; a body cut short of its framing is a failure, never a short
  answer (only a body framed by the connection's end is whole when the upstream closes it
  cleanly, and a reset cuts even that); trailers are read and dropped; HTTP/1.0 answers are
  read until the connection closes unless they say otherwise;
- bounds: a head (status line and headers) larger than `_MAX_HEAD` is refused, and so is a
  transfer coding other than chunked (we never offer one);
- a first-byte timeout and a per-read timeout for bodies: timers are armed only while someone
  waits, not per packet;
- back-pressure: reading from the upstream pauses while a body has more than `_HIGH_WATER`
  bytes that nobody has read;
- a reused connection that the upstream closed before any answer byte (the keep-alive race)
  is reported as stale; the pool decides whether the request may be sent again.

It does not follow redirects, keep cookies, use proxies, decompress (it asks for `identity`),
speak HTTP/2, or send HEAD requests (the parser cannot be told that a HEAD answer has no body).
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from aitre.relay.pool import Pool


log = logging.getLogger(__name__)

_HIGH_WATER = 1024 * 1024  # unread body bytes before reading from the upstream pauses
_BIG_BODY = 64 * 1024  # larger request bodies are written apart from their head (no copy)
# An upstream's status line and headers, or trailers, past this are refused: httptools keeps
# them in memory however long they get. Counted as the bytes that arrive without a head being
# done or a body byte coming out of them (chunk framing between body bytes is a few bytes).
_MAX_HEAD = 256 * 1024


class UpstreamFailure(Exception):
    """The upstream could not be reached or did not answer in time (no HTTP status to show)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "connect" | "timeout" | "protocol" | "busy" (no free connection)
        self.message = message


class Stale(Exception):
    """A reused connection was closed by the upstream before it answered anything."""


Origin = tuple[str, str, int]  # scheme, host, port


class Response:
    """An upstream's answer: status and headers at once, the body as it arrives.

    Header names are lower case. Call `release()` when done (the connection goes back to the
    pool if the body was read to its end) or `close()` to drop the connection.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_error",
        "_head_waiter",
        "_idle_bytes",
        "_interim",
        "_keep_alive",
        "_loop",
        "_progress",
        "_raw_headers",
        "_unread",
        "_until_close",
        "_waiter",
        "complete",
        "got_bytes",
        "headers",
        "parser",
        "status",
    )

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn: Connection | None = conn
        self._loop = loop
        self.status = 0
        self.headers: dict[str, str] = {}
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._progress = False  # a head or body bytes came out of the last bytes fed
        self._idle_bytes = 0  # bytes fed since the last that made progress
        self._until_close = False  # the body ends when the connection does
        self._chunks: list[bytes] = []
        self._unread = 0
        self._error: UpstreamFailure | None = None
        self._head_waiter: asyncio.Future[None] | None = loop.create_future()
        self._waiter: asyncio.Future[bool] | None = None
        self._interim = False
        self._keep_alive = False
        self.complete = False
        self.got_bytes = False
        # One parser per answer: it starts in a clean state whatever the last answer left.
        self.parser = httptools.HttpResponseParser(self)

    # -- what callers use ----------------------------------------------------------------------

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (`application/json`)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    async def readany(self, seconds: float) -> bytes:
        """What arrived since the last read (waiting for something if nothing did); b"" at the
        end of the body. Raises UpstreamFailure (timeout, or the body was cut short)."""
        while True:
            if self._chunks:
                return self._take()
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            if not await self._wait(seconds):
                raise UpstreamFailure("timeout", f"upstream stream stalled for {seconds:g}s")

    async def read(self, limit: int, seconds: float) -> bytes:
        """The whole body, at most `limit` bytes; each wait for more is bounded by `seconds`."""
        declared = self.content_length
        if declared is not None and declared > limit:
            raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
        while not self.complete:
            if self._error is not None:
                raise self._error
            if self._unread > limit:
                raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
            if not await self._wait(seconds):
                raise UpstreamFailure("timeout", "upstream stalled while sending its answer")
        if self._unread > limit:
            raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
        return self._take()

    def release(self) -> None:
        """Done with this answer: keep the connection if the body was read to its end."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if self.complete and self._keep_alive:
                conn.done(self)
            else:
                conn.abort()

    def close(self) -> None:
        """Drop the connection (the upstream sees the hang-up)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    # -- fed by the connection -----------------------------------------------------------------

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._unread = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    async def _wait(self, seconds: float) -> bool:
        """Wait for body bytes, its end or a failure; False: `seconds` passed first. (A timer
        handle, not `asyncio.timeout`: this runs for every chunk of a stream.)"""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def _wait_head(self, seconds: float) -> None:
        waiter = self._head_waiter
        assert waiter is not None
        timer = self._loop.call_later(seconds, _expire_head, waiter, seconds)
        try:
            await waiter
        finally:
            timer.cancel()
            self._head_waiter = None

    def _head_done(self, error: BaseException | None = None) -> None:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _fail(self, error: UpstreamFailure) -> None:
        if self.complete or self._error is not None:
            return
        self._error = error
        self._head_done(error)
        self._wake()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status == 0:  # else a trailer: read and dropped, nothing the relay sends uses them
            self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:  # a second answer to one request: the connection cannot be trusted
            self._keep_alive = False
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): not ours
            self._interim = True
            self._raw_headers = []
            return
        raw = self._raw_headers
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in raw}
        if len(headers) < len(raw):  # a repeated header: all its values, comma-joined
            headers = {}
            for raw_name, raw_value in raw:
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status = status
        self.headers = headers
        self._raw_headers = []
        self._keep_alive = self.parser.should_keep_alive()
        coding = headers.get("transfer-encoding")
        if coding is not None:
            codings = [c.strip().lower() for c in coding.split(",")]
            if any(c not in ("chunked", "identity", "") for c in codings):
                # We never offer a transfer coding (no TE header), and forwarding gzip bytes as
                # the answer would hand the client garbage.
                raise _Unsupported(f"upstream used a transfer coding the gateway does not decode ({coding})")
            chunked = codings[-1] == "chunked"
        else:
            chunked = False
        self._until_close = not chunked and "content-length" not in headers
        self._progress = True
        self._head_done()

    def on_body(self, data: bytes) -> None:
        if self.complete:
            return
        self._progress = True
        self._chunks.append(data)
        self._unread += len(data)
        if self._unread > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self._wake()

    def _connection_lost(self, reused: bool, exc: Exception | None) -> None:
        if self.complete:
            return
        if self._head_waiter is not None and self.status == 0:
            if reused and not self.got_bytes:
                self._head_done(Stale())
            else:
                self._fail(UpstreamFailure("protocol", "upstream closed the connection without answering"))
            return
        if self._until_close and exc is None:
            self.complete = True  # a body that ends with the connection, closed cleanly
            self._keep_alive = False
            self._wake()
            return
        self._fail(UpstreamFailure("protocol", "upstream response was cut short"))


class _Unsupported(Exception):
    pass


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _expire_head(waiter: asyncio.Future[None], seconds: float) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamFailure("timeout", f"upstream did not answer within {seconds:g}s"))


class Connection(asyncio.Protocol):
    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.requests = 0
        self.idle_since = 0.0
        self.paused = False
        self.closed = False

    # -- requests ------------------------------------------------------------------------------

    def start(self, response: Response, head: bytes, body: bytes | None) -> None:
        assert self.transport is not None
        self.response = response
        self.requests += 1
        if body is None or len(body) <= _BIG_BODY:
            self.transport.write(head + body if body else head)
        else:
            self.transport.write(head)
            self.transport.write(body)

    def done(self, response: Response) -> None:
        """`response` was read to its end: keep the connection for the next request."""
        if self.response is response and not self.closed:
            self.response = None
            self.pool.keep(self)
        else:
            self.abort()

    def quiet(self) -> bool:
        """Nothing waits to be read on this idle connection: no end of stream (or stray bytes)
        that arrived since the loop last looked. Costs a poll(2)."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return True
        try:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            self.pool.forget(self)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for on an idle connection: don't trust it
            self.abort()
            return
        response.got_bytes = True
        try:
            response.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response._fail(UpstreamFailure("protocol", "upstream switched protocols"))
            self.abort()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Unsupported):
                response._fail(UpstreamFailure("protocol", str(cause)))
            else:
                log.exception("reading an upstream answer failed")
                response._fail(
                    UpstreamFailure("protocol", "the gateway failed to read the upstream's answer")
                )
            self.abort()
        except httptools.HttpParserError as exc:
            response._fail(UpstreamFailure("protocol", f"upstream sent malformed HTTP ({exc})"))
            self.abort()
        else:
            if response._progress:
                response._progress = False
                response._idle_bytes = 0
            else:
                response._idle_bytes += len(data)
                if response._idle_bytes > _MAX_HEAD:
                    message = f"upstream sent headers larger than {_MAX_HEAD} bytes"
                    response._fail(UpstreamFailure("protocol", message))
                    self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too; `connection_lost` follows

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self.closed
        self.closed = True
        if first:
            self.pool.forget(self)
        if self.response is not None:
            self.response._connection_lost(self.requests > 1, exc)
