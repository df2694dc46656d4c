"""A pooled HTTP/1.1 client for the calls the gateway makes to its upstreams.

Why not aiohttp's client, which the relay used before (and which still fetches client-given
URLs, `media.fetch`): on the benchmark machine one aiohttp request cost ~200 µs of CPU, this
client ~30 µs, and that difference was most of what the gateway spent per relayed request. The
parsing is httptools' (llhttp, the parser uvicorn uses for the other side); what is here is the
connection handling around it:

- keep-alive connections per origin (LIFO, so few stay warm), at most `limit` open in all;
  a connection idle longer than `keepalive` seconds is not reused;
- bodies framed by Content-Length, chunked, or the end of the connection;
- TLS with the system's trust store (or a given context);
- a connect timeout (including the wait for a free connection), a first-byte timeout, and a
  per-read timeout for bodies: timers are armed only while someone waits, not per packet;
- back-pressure: reading from the upstream pauses while a body has more than `_HIGH_WATER`
  bytes that nobody has read;
- a request whose reused connection turns out to have been closed by the upstream before any
  answer byte (the keep-alive race) is sent once more on a new connection.

It does not follow redirects, keep cookies, use proxies, decompress (it asks for `identity`),
speak HTTP/2, or send HEAD requests (the parser cannot be told that a HEAD answer has no body).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from aitre import __version__

log = logging.getLogger(__name__)

_HIGH_WATER = 1024 * 1024  # unread body bytes before reading from the upstream pauses
_BIG_BODY = 64 * 1024  # larger request bodies are written apart from their head (no copy)
_URL_CACHE_SIZE = 4096
_DEFAULT_HEAD = f"User-Agent: aitre/{__version__}\r\nAccept-Encoding: identity\r\n"


class UpstreamFailure(Exception):
    """The upstream could not be reached or did not answer in time (no HTTP status to show)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "connect" | "timeout" | "protocol"
        self.message = message


class _Stale(Exception):
    """A reused connection was closed by the upstream before it answered anything."""


Origin = tuple[str, str, int]  # scheme, host, port


class _Target:
    __slots__ = ("head", "origin", "path")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamFailure("connect", f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UpstreamFailure("connect", f"bad port in URL: {url!r}") from None
        self.origin: Origin = (scheme, parts.hostname, port)
        # Spaces and non-ASCII characters percent-encoded, existing escapes kept (as browsers do);
        # urlsplit has already removed line breaks and tabs.
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.path = quote(path, safe="!$%&'()*+,/:;=?@[]~")
        host = parts.netloc.rpartition("@")[2]  # never send userinfo
        _check_header("Host", host)
        _check_header("path", self.path)
        self.head = f" {self.path} HTTP/1.1\r\nHost: {host}\r\n{_DEFAULT_HEAD}"


def _check_header(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise UpstreamFailure("protocol", f"refusing to send a header or path with a line break: {name!r}")


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
        "_interim",
        "_keep_alive",
        "_loop",
        "_raw_headers",
        "_unread",
        "_waiter",
        "complete",
        "got_bytes",
        "headers",
        "parser",
        "status",
    )

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn: _Connection | None = conn
        self._loop = loop
        self.status = 0
        self.headers: dict[str, str] = {}
        self._raw_headers: list[tuple[bytes, bytes]] = []
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
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
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
        self._head_done()

    def on_body(self, data: bytes) -> None:
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

    def _connection_lost(self, reused: bool) -> None:
        if self.complete:
            return
        if self._head_waiter is not None and self.status == 0:
            if reused and not self.got_bytes:
                self._head_done(_Stale())
            else:
                self._fail(UpstreamFailure("protocol", "upstream closed the connection without answering"))
            return
        if "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        ):
            self.complete = True  # a body that ends with the connection
            self._keep_alive = False
            self._wake()
            return
        self._fail(UpstreamFailure("protocol", "upstream response was cut short"))


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _expire_head(waiter: asyncio.Future[None], seconds: float) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamFailure("timeout", f"upstream did not answer within {seconds:g}s"))


class _Connection(asyncio.Protocol):
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
        except httptools.HttpParserCallbackError:
            log.exception("reading an upstream answer failed")
            response._fail(UpstreamFailure("protocol", "the gateway failed to read the upstream's answer"))
            self.abort()
        except httptools.HttpParserError as exc:
            response._fail(UpstreamFailure("protocol", f"upstream sent malformed HTTP ({exc})"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too; `connection_lost` follows

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self.closed
        self.closed = True
        if first:
            self.pool.forget(self)
        if self.response is not None:
            self.response._connection_lost(self.requests > 1)


class Pool:
    """Connections to every upstream this process talks to, at most `limit` open at once."""

    def __init__(self, limit: int = 512, keepalive: float = 30.0, ssl_context: ssl.SSLContext | None = None):
        self.limit = max(1, limit)
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, _Target] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None = None,
        *,
        connect_timeout: float = 10.0,
        first_byte_timeout: float = 120.0,
    ) -> Response:
        """Send a request and wait for the status line and headers. Raises UpstreamFailure.

        A caller cancelled while waiting drops the connection, so the upstream sees it go."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _URL_CACHE_SIZE:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        head = self._head(method, target, headers, body)
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            conn = await self._acquire(target.origin, connect_timeout, fresh=attempt == 2)
            response = Response(conn, loop)
            conn.start(response, head, body)
            try:
                await response._wait_head(first_byte_timeout)
            except _Stale:
                conn.abort()
                continue
            except BaseException:
                conn.abort()
                raise
            return response
        raise UpstreamFailure("protocol", "upstream closed the connection without answering")

    @staticmethod
    def _head(method: str, target: _Target, headers: dict[str, str], body: bytes | None) -> bytes:
        block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # Exactly one line break per header, or a name or value carried one in: refuse.
        if block.count("\n") != len(headers) or block.count("\r") != len(headers):
            for name, value in headers.items():
                _check_header(name, value)
        lines = [method, target.head, block]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise UpstreamFailure("protocol", "a request header has characters HTTP cannot carry") from None

    async def _acquire(self, origin: Origin, within: float, fresh: bool = False) -> _Connection:
        deadline = time.monotonic() + within
        while True:
            if self._closed:
                raise UpstreamFailure("connect", "the gateway is shutting down")
            if not fresh:
                conn = self._idle_connection(origin)
                if conn is not None:
                    return conn
            if len(self._open) + self._opening < self.limit or self._evict_idle():
                return await self._connect(origin, max(deadline - time.monotonic(), 0.001))
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    await waiter
            except TimeoutError:
                raise UpstreamFailure(
                    "timeout", f"no free upstream connection within {within:g}s ({self.limit} in use)"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest = time.monotonic() - self.keepalive
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest:
                return conn
            conn.abort()
        return None

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection (to any origin) to make room; False if none."""
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        oldest.abort()
        return True

    async def _connect(self, origin: Origin, within: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = (self._ssl or _default_ssl()) if scheme == "https" else None
        self._opening += 1
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            message = f"cannot connect to upstream {host}:{port} within {within:g}s"
            raise UpstreamFailure("timeout", message) from None
        except ssl.SSLError as exc:
            raise UpstreamFailure("connect", f"TLS with upstream {host}:{port} failed: {exc}") from None
        except OSError as exc:
            raise UpstreamFailure("connect", f"cannot connect to upstream {host}:{port}: {exc}") from None
        finally:
            self._opening -= 1
            self._wake_one()
        if self._closed:
            conn.abort()
            raise UpstreamFailure("connect", "the gateway is shutting down")
        self._open.add(conn)
        return conn

    def keep(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        idle = self._idle.setdefault(conn.origin, [])
        if idle and idle[0].closed:  # the upstream closed some while they waited: drop them
            idle[:] = [c for c in idle if not c.closed]
        idle.append(conn)
        self._wake_one()

    def forget(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)  # let the transports run their connection_lost


_ssl_default: ssl.SSLContext | None = None


def _default_ssl() -> ssl.SSLContext:
    global _ssl_default
    if _ssl_default is None:
        _ssl_default = ssl.create_default_context()
    return _ssl_default
