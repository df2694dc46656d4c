"""Keep-alive connections to the upstreams, and requests sent over them: the pooling half of
the gateway's own upstream client (`http1.py` speaks the protocol on one connection).

- keep-alive connections per origin (LIFO, so few stay warm), at most `per_origin` open to
  one origin and `limit` in all, so one upstream that hangs (or whose streams go to clients
  that do not read) cannot take the connections every other upstream needs;
- a request that finds its origin (or the process) at its cap waits for a connection at most
  `wait` seconds, then fails as "busy"; the connect timeout is for connecting only;
- a connection idle longer than `keepalive` seconds is not reused, and one idle for more than
  `check_idle_after` seconds is checked for an unread end of stream before it is;
- TLS with the system's trust store (or a given context), the host name sent as SNI and checked
  against the certificate;
- retries: a request is sent again (once, on a new connection) only when the upstream cannot
  have acted on it. A reused connection closed without any answer byte is the keep-alive race
  when the upstream closed it as idle just as we wrote, but it is just as much an upstream that
  read the request and then went down: a GET, PUT, DELETE... (idempotent, RFC 9110 9.2.2) is
  sent again, a POST (a paid generation) is not, and fails instead; the relay's failover decides
  what next. urllib3 and aiohttp retry only idempotent methods the same way; httpx retries none.
  What makes the race rare for a POST is that a connection the upstream closed while it sat
  idle is seen closed before anything is written on it (the loop reads the upstream's FIN while
  idle, and a long-idle connection is polled first), and that is always safe to replace.
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
# Sent again after a stale connection: RFC 9110 9.2.2's idempotent methods.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


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


class _Host:
    """The connections to one origin: idle ones, how many are open or opening, who waits."""

    __slots__ = ("count", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: list[Connection] = []
        self.count = 0
        self.waiters: deque[asyncio.Future[bool]] = deque()


class Pool:
    """Connections to every upstream this process talks to: at most `per_origin` open to one
    origin (scheme, host, port) and `limit` in all."""

    # An upstream closes idle connections after its own keep-alive timeout (uvicorn 5 s, nginx
    # 75 s), never sooner than about a second: a connection idle longer than this is polled for
    # an end of stream the loop has not read yet before it is reused (about 1 µs).
    check_idle_after = 1.0

    def __init__(
        self,
        limit: int = 512,
        keepalive: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        per_origin: int | None = None,
        wait: float = 10.0,
    ):
        self.limit = max(1, limit)
        self.per_origin = max(1, min(per_origin or self.limit, self.limit))
        self.keepalive = keepalive
        self.wait = wait
        self._ssl = ssl_context
        self._hosts: dict[Origin, _Host] = {}
        self._open: set[Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()  # for a slot under `limit`
        self._targets: dict[str, _Target] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def connections_to(self, url: str) -> int:
        """Connections open or opening to the origin of `url`."""
        host = self._hosts.get(_Target(url).origin)
        return host.count if host is not None else 0

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
                if method in _IDEMPOTENT and attempt == 1:
                    continue
                raise UpstreamFailure(
                    "protocol",
                    "upstream closed a kept-alive connection without answering; the request may have "
                    "reached it, so it is not sent again",
                ) from None
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
        deadline = 0.0
        while True:
            if self._closed:
                raise UpstreamFailure("connect", "the gateway is shutting down")
            host = self._hosts.get(origin)  # again after a wait: an origin left unused is dropped
            if host is None:
                host = self._hosts[origin] = _Host()
            if not fresh:
                conn = self._idle_connection(host)
                if conn is not None:
                    return conn
            elif host.count >= self.per_origin and host.idle:
                self._close_idle(host.idle[0])  # a fresh one is wanted: make room among its own
            if host.count < self.per_origin:
                if len(self._open) + self._opening < self.limit or self._evict_idle():
                    return await self._connect(origin, host, within)
                queue, busy = self._waiters, f"all {self.limit} upstream connections of the gateway are busy"
            else:
                queue, busy = host.waiters, f"all {self.per_origin} connections to this upstream are busy"
            if not deadline:
                deadline = time.monotonic() + self.wait
            if not await self._wait(queue, host, deadline):
                raise UpstreamFailure("busy", f"{busy}; none came free within {self.wait:g}s")

    async def _wait(self, queue: deque[asyncio.Future[bool]], host: _Host, deadline: float) -> bool:
        """Wait in `queue` for a connection to come free; False: `deadline` passed first."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        queue.append(waiter)
        timer = loop.call_later(max(deadline - time.monotonic(), 0.0), _expire, waiter)
        woken = False
        try:
            woken = await waiter
            return woken
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._wake(host)  # woken, then cancelled before it could take it: pass it on
            raise
        finally:
            timer.cancel()
            if not woken and waiter in queue:
                queue.remove(waiter)

    def _idle_connection(self, host: _Host) -> Connection | None:
        idle = host.idle
        if not idle:
            return None
        now = time.monotonic()
        oldest = now - self.keepalive
        while idle:
            conn = idle.pop()
            fresh_enough = not conn.closed and conn.idle_since >= oldest
            if fresh_enough and (now - conn.idle_since < self.check_idle_after or conn.quiet()):
                return conn
            conn.abort()
        return None

    def _close_idle(self, conn: Connection) -> None:
        self._hosts[conn.origin].idle.remove(conn)
        conn.abort()

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection (to any origin) to make room; False if none."""
        oldest: Connection | None = None
        for host in self._hosts.values():
            idle = host.idle
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        self._close_idle(oldest)
        return True

    async def _connect(self, origin: Origin, host: _Host, within: float) -> Connection:
        scheme, hostname, port = origin
        loop = asyncio.get_running_loop()
        context = (self._ssl or _default_ssl()) if scheme == "https" else None
        # Making room may have closed the origin's last connection and dropped it as unused
        # (no await since, so nothing else took its place): it is in use again.
        self._hosts[origin] = host
        self._opening += 1
        host.count += 1
        opened = False
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, origin),
                    hostname,
                    port,
                    ssl=context,
                    server_hostname=hostname if context is not None else None,
                )
            opened = True
        except TimeoutError:
            message = f"cannot connect to upstream {hostname}:{port} within {within:g}s"
            raise UpstreamFailure("timeout", message) from None
        except ssl.SSLError as exc:
            raise UpstreamFailure("connect", f"TLS with upstream {hostname}:{port} failed: {exc}") from None
        except OSError as exc:
            raise UpstreamFailure("connect", f"cannot connect to upstream {hostname}:{port}: {exc}") from None
        finally:
            self._opening -= 1
            if not opened:
                host.count -= 1
                self._freed(origin, host)
        if self._closed:
            self._open.add(conn)
            conn.abort()
            raise UpstreamFailure("connect", "the gateway is shutting down")
        self._open.add(conn)
        return conn

    def keep(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        host = self._hosts[conn.origin]
        idle = host.idle
        if idle and idle[0].closed:  # the upstream closed some while they waited: drop them
            idle[:] = [c for c in idle if not c.closed]
        idle.append(conn)
        if host.waiters or self._waiters:
            self._wake(host)

    def forget(self, conn: Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            host = self._hosts[conn.origin]
            host.count -= 1
            self._freed(conn.origin, host)

    def _freed(self, origin: Origin, host: _Host) -> None:
        """A connection to `origin` closed (or never opened)."""
        if host.waiters or self._waiters:
            self._wake(host)
        elif host.count == 0:
            del self._hosts[origin]  # no connection, nobody waiting: the origin may never come back

    def _wake(self, host: _Host) -> None:
        """A connection to `host` came free (idle or closed): first for those waiting for that
        origin, else for one waiting for any slot (it may close an idle one to make room)."""
        if not _wake_first(host.waiters):
            _wake_first(self._waiters)

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.abort()
        for host in self._hosts.values():
            host.idle.clear()
            for waiter in host.waiters:
                if not waiter.done():
                    waiter.set_result(True)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(True)
        await asyncio.sleep(0)  # let the transports run their connection_lost


def _wake_first(waiters: deque[asyncio.Future[bool]]) -> bool:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(True)
            return True
    return False


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


_ssl_default: ssl.SSLContext | None = None


def _default_ssl() -> ssl.SSLContext:
    global _ssl_default
    if _ssl_default is None:
        _ssl_default = ssl.create_default_context()
    return _ssl_default
