"""The one pooled HTTP client a process uses to reach upstreams, and the request it sends."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from aitre.config import Settings
from aitre.relay.http1 import Response, UpstreamFailure
from aitre.relay.pool import Pool

__all__ = ["Response", "Timeouts", "Upstream", "UpstreamFailure", "UpstreamRequest", "read_body"]

# A keep-alive connection idle this long is not reused: shorter than the idle timeouts of
# common servers and load balancers (nginx 75 s, AWS ALB 60 s), so they rarely close it first.
KEEPALIVE_SECONDS = 30.0


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
    body: bytes | None = None


class Upstream:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: Pool | None = None

    def default_timeouts(self) -> Timeouts:
        s = self._settings
        return Timeouts(connect=s.connect_timeout, first_byte=s.first_byte_timeout, idle=s.idle_timeout)

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            ca_file = self._settings.upstream_ca_file
            context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
            s = self._settings
            self._pool = Pool(
                s.pool_size,
                KEEPALIVE_SECONDS,
                context,
                per_origin=s.pool_size_per_upstream,
                wait=s.pool_wait_seconds,
            )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def download(
        self, url: str, timeouts: Timeouts, limit: int, headers: dict[str, str] | None = None
    ) -> bytes:
        return await download(self, url, timeouts, limit, headers)

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> Response:
        """Send and wait for the status line and headers; the body is read by the caller.
        Raises UpstreamFailure."""
        return await self.pool.request(
            req.method,
            req.url,
            req.headers,
            req.body,
            connect_timeout=timeouts.connect,
            first_byte_timeout=timeouts.first_byte,
        )


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


async def read_body(resp: Response, timeouts: Timeouts, limit: int) -> bytes:
    """The whole body, bounded in size; each wait for more is bounded by the first-byte timeout."""
    return await resp.read(limit, timeouts.first_byte)


async def answers(upstream: Upstream, req: UpstreamRequest, timeouts: Timeouts) -> bool:
    """Whether `req` gets a 2xx answer (used by channel probes)."""
    try:
        resp = await upstream.send(req, timeouts)
    except UpstreamFailure:
        return False
    try:
        return 200 <= resp.status < 300
    finally:
        resp.close()  # the body is not read: the connection cannot be reused
