"""When the gateway serves one request, the bytes its client waits for leave at once, not when
the gateway's task next waits: a whole answer as soon as it is complete, and a stream's first
block before the stream reads on. Under load they leave at the end of the loop turn, together.

Each app below blocks its event loop after the `send` under test until the client has the
bytes (or 5 s pass): with the bytes still corked in the transport, the client cannot get them
while the loop is blocked, so the app sees a timeout and the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from aitre.relay.streaming import StreamOutcome, StreamResponse
from aitre.server_protocol import GatewayHttpProtocol

WAIT = 5.0


class Seen:
    """The client's side: set once the client has read what the app is waiting on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.in_time: bool | None = None

    def block_until_seen(self, wait: float = WAIT) -> None:
        self.in_time = self.event.wait(wait)  # blocks the loop on purpose


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=GatewayHttpProtocol, loop="uvloop", log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def seen() -> Seen:
    return Seen()


def test_a_complete_answer_leaves_before_the_app_goes_on(seen: Seen) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
        seen.block_until_seen()  # e.g. the books closing after the answer

    with _serve(app) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = _read_until(conn, b"hello")
        seen.event.set()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello")
    assert seen.in_time is True


def test_under_load_answers_wait_for_the_end_of_the_turn(seen: Seen) -> None:
    """With another request being served, an answer stays corked until the loop turn ends (then
    answers that are ready together leave together): it is not lost, only not sent early."""
    started, release = threading.Event(), asyncio.Event()
    loop: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        if scope["path"] == "/slow":
            loop.append(asyncio.get_running_loop())
            started.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        if scope["path"] == "/fast":
            seen.block_until_seen(0.5)  # long enough for a sent answer to arrive

    with (
        _serve(app) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as slow,
        socket.create_connection(("127.0.0.1", port), timeout=10) as fast,
    ):
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        assert started.wait(WAIT)
        fast.sendall(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        got = _read_until(fast, b"ok")
        seen.event.set()
        loop[0].call_soon_threadsafe(release.set)
        assert _read_until(slow, b"ok").endswith(b"ok")
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")
    assert seen.in_time is False


class _WholeStream:
    """A stream that arrived in one read: the second block is already there."""

    eof = False

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.calls = 0

    async def next_block(self) -> bytes:
        self.calls += 1
        self.seen.block_until_seen()  # reading on, and everything after it, takes time
        self.eof = True
        return b"data: [DONE]\n\n"

    def complete(self) -> bool:
        return True

    def ending(self, failure: str | None) -> bytes:
        return b""

    def close(self, reuse: bool) -> None:
        pass


def test_a_streams_first_block_leaves_before_the_stream_reads_on(seen: Seen) -> None:
    outcomes: list[StreamOutcome] = []

    async def on_close(outcome: StreamOutcome) -> None:
        outcomes.append(outcome)

    first = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    headers = [(b"content-type", b"text/event-stream")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await StreamResponse(_WholeStream(seen), first, headers, on_close)(scope, receive, send)

    with _serve(app) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = _read_until(conn, b'"Hi"')
        seen.event.set()
        rest = _read_until(conn, b"0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b'"Hi"' in head
    assert seen.in_time is True
    assert b"[DONE]" in rest and outcomes == [StreamOutcome()]
