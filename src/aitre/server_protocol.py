"""uvicorn's httptools protocol, with the writes of one event-loop turn sent together, a deadline
for each request's head, and a cap on the connections a process keeps.

uvicorn writes a response's status line and headers, then its body, as two `transport.write`
calls, and uvloop sends each at once: two `send(2)` calls and two TCP segments for every JSON
answer, and one per event for a stream whose events arrive together. On the benchmark machine a
loopback send cost about as much as all of the gateway's own work for a request. Buffering the
writes until the end of the loop turn (the way nginx's `tcp_nopush` or TCP_CORK do it in the
kernel) sends a JSON answer in one call, and a burst of stream events in one, while delaying
nothing by more than the rest of the current turn.

uvicorn has no deadline for a request's line and headers: a client that sends them a byte at a
time (slowloris), or opens a connection and sends nothing, keeps it for as long as it likes.
Here each connection must deliver a request's head within `AITRE_HEADER_TIMEOUT_SECONDS` of its
start, and of the first byte of each later request (between requests the keep-alive timeout
applies). A head that arrives in one read, as almost all do, never starts a timer.

Past the open-file limit a process can no longer accept a connection, and the client is left
with no answer at all. uvicorn's `limit_concurrency` counts every connection, idle ones too, and
then answers 503 on the connections already open as well. Here a connection beyond
`max_connections` gets one OpenAI-shaped 503 and is closed, while those already open keep
working; the cap is set below the file limit (`server.connection_cap`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aitre.errors import ApiError

_FLUSH_AT = 64 * 1024  # more than this waiting: send now (a large body gains nothing from waiting)


class GatewayConfig(uvicorn.Config):
    """uvicorn's settings, and the front door's own (read by `GatewayHttpProtocol`)."""

    def __init__(self, app: Any, *, header_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.max_connections = max_connections


def _error_bytes(error: ApiError) -> bytes:
    return orjson.dumps(error.body())


_HEAD_TIMEOUT_BODY = _error_bytes(
    ApiError(408, "The request's headers did not arrive in time.", code="request_timeout")
)
_HEAD_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TIMEOUT_BODY), _HEAD_TIMEOUT_BODY)
)


def _over_capacity(cap: int) -> ASGIApp:
    body = _error_bytes(
        ApiError(
            503,
            f"The gateway has as many connections open as it may ({cap}); retry shortly.",
            type="server_error",
            code="too_many_connections",
        )
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class CorkedTransport:
    """A transport whose writes wait for the end of the loop turn and then go out as one."""

    __slots__ = ("_buffer", "_buffered", "_loop", "_scheduled", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._buffer.append(data)  # type: ignore[arg-type]  # any bytes-like: writelines takes it
        self._buffered += len(data)
        if self._buffered >= _FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        self._scheduled = False
        buffer = self._buffer
        if not buffer:
            return
        self._buffer = []
        self._buffered = 0
        if self.transport.is_closing():
            return
        if len(buffer) == 1:
            self.transport.write(buffer[0])
        else:
            self.transport.writelines(buffer)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._buffer = []
        self._buffered = 0
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self._buffered

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # the rest of the transport API, as is
        return getattr(self.transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) on a corked transport, with a deadline for each
    request's head and a cap on connections."""

    transport: Any

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        own = config if isinstance(config, GatewayConfig) else None
        self.head_timeout = own.header_timeout if own is not None else 0.0
        self.max_connections = own.max_connections if own is not None else 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        corked: Any = CorkedTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(corked)
        if 0 < self.max_connections < len(self.connections):
            self.app = _over_capacity(self.max_connections)  # its one request; then it is closed
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        HttpToolsProtocol.data_received(self, data)
        scope = self.scope  # `_in_head`, written out: this runs on every read
        if self._head_timer is None and scope is not None and "method" not in scope:
            self._arm_head_timer()

    def _in_head(self) -> bool:
        """A request's line and headers have begun and are not complete (uvicorn makes a new
        scope when a request begins and sets its method when the headers are complete)."""
        return self.scope is not None and "method" not in self.scope

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._stop_head_timer()
        self.scope["aitre.flush"] = self.flush_if_alone  # type: ignore[typeddict-unknown-key]
        # For `stall.hang_up`: a client that does not read is dropped, not waited for.
        self.scope["aitre.abort"] = self.transport.abort  # type: ignore[typeddict-unknown-key]
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        if self.head_timeout > 0 and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # Serving a request: a pipelined head behind it waits on us (reading is paused).
            self._arm_head_timer()
            return
        if self._in_head():  # a request has begun: say why it ends (a silent connection just closes)
            self.transport.write(_HEAD_TIMEOUT)
        self.transport.close()

    def flush_if_alone(self) -> None:
        """Send what waits now if this is the only request being served.

        Alone, a request's bytes have nothing to wait for: unloaded, sending an answer at once
        instead of at the end of the loop turn takes about 50 µs off its latency. Under load
        the writes stay corked to the end of the turn: answers that leave together bring the
        next requests back together, and the loop then serves them in fewer turns (sending each
        at once cost 12% more CPU per request at 8 connections).
        """
        if len(self.server_state.tasks) <= 1:
            self.transport.flush()

    def on_response_complete(self) -> None:
        self.flush_if_alone()
        super().on_response_complete()
