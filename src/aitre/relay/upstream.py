"""The one pooled HTTP client a process uses to reach upstreams, and the request it sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from aitre.config import Settings


@dataclass(slots=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | aiohttp.FormData | None = None


class UpstreamFailure(Exception):
    """The upstream could not be reached or did not answer in time (no HTTP status to show)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "connect" | "timeout" | "protocol"
        self.message = message


class Upstream:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def default_timeouts(self) -> Timeouts:
        s = self._settings
        return Timeouts(connect=s.connect_timeout, first_byte=s.first_byte_timeout, idle=s.idle_timeout)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._settings.pool_size, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                json_serialize=lambda obj: obj,  # never used: bodies are pre-serialized
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def download(
        self, url: str, timeouts: Timeouts, limit: int, headers: dict[str, str] | None = None
    ) -> bytes:
        return await download(self, url, timeouts, limit, headers)

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> aiohttp.ClientResponse:
        """Send and wait for the status line and headers; the body is read by the caller."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
        )
        try:
            return await self.session.request(
                req.method,
                req.url,
                headers=req.headers,
                data=req.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise UpstreamFailure(
                "timeout", f"upstream did not answer within {timeouts.first_byte:g}s"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure("connect", f"cannot connect to upstream: {exc.os_error}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise UpstreamFailure("protocol", "upstream closed the connection without answering") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("protocol", f"upstream request failed: {exc}") from exc


async def download(
    upstream: Upstream, url: str, timeouts: Timeouts, limit: int, headers: dict[str, str] | None = None
) -> bytes:
    """GET a file an upstream pointed us to (a generated image). Raises UpstreamFailure."""
    resp = await upstream.send(UpstreamRequest("GET", url, dict(headers or {})), timeouts)
    try:
        if resp.status != 200:
            raise UpstreamFailure("protocol", f"downloading {url} failed with HTTP {resp.status}")
        return await read_body(resp, timeouts, limit)
    finally:
        resp.release()


async def read_body(resp: aiohttp.ClientResponse, timeouts: Timeouts, limit: int) -> bytes:
    """The whole body, bounded in size. Time is bounded by the request's `sock_read` timeout
    (no per-chunk timer: this runs for every non-streamed answer)."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
    try:
        if declared is not None:
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > limit:
                raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except TimeoutError as exc:
        raise UpstreamFailure("timeout", "upstream stalled while sending its answer") from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamFailure("protocol", "upstream response was cut short") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailure("protocol", f"reading the upstream response failed: {exc}") from exc


async def answers(upstream: Upstream, req: UpstreamRequest, timeouts: Timeouts) -> bool:
    """Whether `req` gets a 2xx answer (used by channel probes)."""
    try:
        resp = await upstream.send(req, timeouts)
    except UpstreamFailure:
        return False
    try:
        return 200 <= resp.status < 300
    finally:
        resp.release()


def retry_after(headers: Any) -> str | None:
    value = headers.get("retry-after") if headers is not None else None
    return str(value) if value else None
