"""uvicorn's httptools protocol, with the writes of one event-loop turn sent together.

uvicorn writes a response's status line and headers, then its body, as two `transport.write`
calls, and uvloop sends each at once: two `send(2)` calls and two TCP segments for every JSON
answer, and one per event for a stream whose events arrive together. On the benchmark machine a
loopback send cost about as much as all of the gateway's own work for a request. Buffering the
writes until the end of the loop turn (the way nginx's `tcp_nopush` or TCP_CORK do it in the
kernel) sends a JSON answer in one call, and a burst of stream events in one, while delaying
nothing by more than the rest of the current turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_FLUSH_AT = 64 * 1024  # more than this waiting: send now (a large body gains nothing from waiting)


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
    """uvicorn's HTTP/1.1 protocol (httptools) on a corked transport."""

    transport: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        corked: Any = CorkedTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(corked)

    def on_headers_complete(self) -> None:
        self.scope["aitre.flush"] = self.flush_if_alone  # type: ignore[typeddict-unknown-key]
        # For `stall.hang_up`: a client that does not read is dropped, not waited for.
        self.scope["aitre.abort"] = self.transport.abort  # type: ignore[typeddict-unknown-key]
        super().on_headers_complete()

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
