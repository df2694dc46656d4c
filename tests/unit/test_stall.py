"""A client that stops reading a stream is cut off after the client-write timeout: the stream
ends as a client disconnect (its source closed, not kept), the gateway hangs up on the client,
and a client that reads slowly but steadily is not cut. Served by uvicorn on the gateway's own
protocol, to raw sockets that read only when the test says so."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from aitre.relay.live import Emit, LiveStream
from aitre.relay.streaming import StreamOutcome, StreamResponse
from aitre.server_protocol import GatewayHttpProtocol

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 4000 + b'"}}]}\n\n'
HEADERS = [(b"content-type", b"text/event-stream")]


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=GatewayHttpProtocol, loop="uvloop", log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def _lazy_client(port: int) -> socket.socket:
    """A client with a small receive buffer, so that a server's writes back up soon."""
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.settimeout(10)
    conn.connect(("127.0.0.1", port))
    conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    return conn


def _hung_up(conn: socket.socket) -> bool:
    """Reads what was sent until the server's end: True if it came (a reset or the end)."""
    try:
        while conn.recv(1 << 20):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


class Endless:
    """An upstream stream that never ends: a block whenever asked."""

    eof = False

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.blocks = 0
        self.closed: list[bool] = []
        self.escaped: list[BaseException] = []

    async def next_block(self) -> bytes:
        if self.pause:
            await asyncio.sleep(self.pause)
        self.blocks += 1
        return EVENT

    def complete(self) -> bool:
        return False

    def ending(self, failure: str | None) -> bytes:
        return b""

    def close(self, reuse: bool) -> None:
        self.closed.append(reuse)


def _stream_app(source: Endless, outcomes: list[StreamOutcome], seconds: float) -> Any:
    async def on_close(outcome: StreamOutcome) -> None:
        outcomes.append(outcome)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        response = StreamResponse(source, EVENT, list(HEADERS), on_close, write_timeout=seconds)
        try:
            await response(scope, receive, send)
        except BaseException as exc:  # the app must end quietly, even when it cuts a client off
            source.escaped.append(exc)
            raise

    return app


def test_a_client_that_stops_reading_is_cut_off_and_its_stream_ends_as_gone() -> None:
    source, outcomes = Endless(), []
    with _serve(_stream_app(source, outcomes, 0.5)) as port, _lazy_client(port) as conn:
        t0 = time.monotonic()
        deadline = t0 + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert outcomes, "the stream was never cut"
        (outcome,) = outcomes
        assert (outcome.status, outcome.client_gone) == (499, True)
        assert outcome.error == "client stopped reading: nothing taken for 0.5s"
        assert source.closed == [False]  # the upstream connection closed, not kept
        assert 0.5 <= took < 5.0
        blocks = source.blocks
        assert _hung_up(conn)  # the gateway dropped the connection, unsent bytes and all
    assert source.blocks == blocks  # nothing more was read from the upstream
    assert source.escaped == []


def test_a_client_that_reads_slowly_but_steadily_is_not_cut() -> None:
    source, outcomes = Endless(pause=0.01), []
    with _serve(_stream_app(source, outcomes, 0.5)) as port, _lazy_client(port) as conn:
        received = 0
        until = time.monotonic() + 2.0  # four timeouts' worth
        while time.monotonic() < until:
            received += len(conn.recv(4096))
            time.sleep(0.05)  # ~80 KB/s: far slower than the source, never silent for 0.5 s
        assert outcomes == []
        assert received > 8 * len(EVENT)


def test_with_no_timeout_a_stalled_client_is_waited_for() -> None:
    source, outcomes = Endless(), []
    with _serve(_stream_app(source, outcomes, 0.0)) as port, _lazy_client(port):
        time.sleep(1.0)
        assert outcomes == []


def test_a_live_stream_whose_client_stops_reading_is_cut_and_its_work_cancelled() -> None:
    gone = threading.Event()
    cancelled = threading.Event()

    async def work(emit: Emit) -> None:
        try:
            while True:
                await emit(EVENT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def on_gone() -> None:
        gone.set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        scope["aitre.state"] = _State(0.5)
        await LiveStream(work, list(HEADERS), on_gone)(scope, receive, send)

    with _serve(app) as port, _lazy_client(port) as conn:
        assert gone.wait(10) and cancelled.is_set()
        assert _hung_up(conn)


class _Settings:
    def __init__(self, seconds: float) -> None:
        self.client_write_timeout = seconds


class _State:
    """What `stall.write_timeout` reads from the scope: the app's settings."""

    def __init__(self, seconds: float) -> None:
        self.settings = _Settings(seconds)
