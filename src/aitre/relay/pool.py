"""Keep-alive connections to the upstreams, and requests sent over them: the pooling half of
the gateway's own upstream client (`http1.py` speaks the protocol on one connection).

- keep-alive connections per origin (LIFO, so few stay warm), at most `limit` open in all;
  a connection idle longer than `keepalive` seconds is not reused;
- TLS with the system's trust store (or a given context);
- a connect timeout that includes the wait for a free connection;
- a request whose reused connection turns out to have been closed by the upstream before any
  answer byte (the keep-alive race) is sent once more on a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import quote, urlsplit

from aitre import __version__
from aitre.relay.http1 import Connection, Origin, Response, Stale, UpstreamFailure

_URL_CACHE_SIZE = 4096
_DEFAULT_HEAD = f"User-Agent: aitre/{__version__}\r\nAccept-Encoding: identity\r\n"


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


class Pool:
    """Connections to every upstream this process talks to, at most `limit` open at once."""

    def __init__(self, limit: int = 512, keepalive: float = 30.0, ssl_context: ssl.SSLContext | None = None):
        self.limit = max(1, limit)
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
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
            except Stale:
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

    async def _acquire(self, origin: Origin, within: float, fresh: bool = False) -> Connection:
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

    def _idle_connection(self, origin: Origin) -> Connection | None:
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
        oldest: Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        oldest.abort()
        return True

    async def _connect(self, origin: Origin, within: float) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = (self._ssl or _default_ssl()) if scheme == "https" else None
        self._opening += 1
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, origin),
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

    def keep(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        idle = self._idle.setdefault(conn.origin, [])
        if idle and idle[0].closed:  # the upstream closed some while they waited: drop them
            idle[:] = [c for c in idle if not c.closed]
        idle.append(conn)
        self._wake_one()

    def forget(self, conn: Connection) -> None:
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
