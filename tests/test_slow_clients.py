"""Slow and greedy clients at the front door: a request's head has a deadline, connections past
the cap (or past what the open-file limit allows) get a clear 503 instead of no answer, and the
connections already open keep working."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from tests.support.processes import Gateway

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: aitre\r\n\r\n"


def _connect(gw: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def _response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes] | None:
    """One whole HTTP response from `sock`, or None if none came (closed or silent)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
    except (TimeoutError, ConnectionError):
        return None
    return int(lines[0].split()[1]), headers, body


def _closed(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_a_head_sent_a_byte_at_a_time_is_cut_with_408(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_HEADER_TIMEOUT_SECONDS="1").start()
    sock = _connect(gw)
    sock.settimeout(0.2)
    t0 = time.monotonic()
    received = b""
    for byte in b"GET /healthz HTTP/1.1\r\nHost: aitre\r\nX-Slow: " + b"x" * 100:
        try:
            sock.sendall(bytes([byte]))
            received += sock.recv(4096)
            break  # the server answered (or closed: b"")
        except TimeoutError:
            continue  # still open, nothing said: go on trickling
        except ConnectionError:
            break
    elapsed = time.monotonic() - t0
    sock.close()
    assert received.startswith(b"HTTP/1.1 408"), (received, elapsed)
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert elapsed < 5


def test_a_connection_that_sends_nothing_is_closed(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_HEADER_TIMEOUT_SECONDS="1").start()
    with _connect(gw) as sock:
        assert _closed(sock, 5)


def test_an_idle_kept_alive_connection_is_not_cut_by_the_head_deadline(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway(AITRE_HEADER_TIMEOUT_SECONDS="1").start()
    with _connect(gw) as sock:
        sock.sendall(REQUEST)
        assert (_response(sock) or (0,))[0] == 200
        time.sleep(2.5)  # idle between requests: the keep-alive timeout (75 s) applies
        sock.sendall(REQUEST)
        assert (_response(sock) or (0,))[0] == 200


def test_connections_past_the_cap_get_503_and_open_ones_keep_working(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway(AITRE_MAX_CONNECTIONS="4").start()
    time.sleep(0.5)  # the start-up health checks' connections are gone
    held = [_connect(gw) for _ in range(4)]
    for sock in held:
        sock.sendall(REQUEST)
        assert (_response(sock) or (0,))[0] == 200
    with _connect(gw) as extra:
        extra.sendall(REQUEST)
        answer = _response(extra)
        assert answer is not None, "no answer at all past the cap"
        status, headers, body = answer
        assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        assert _closed(extra, 5)
    for sock in held:
        sock.sendall(REQUEST)
        assert (_response(sock) or (0,))[0] == 200
    held.pop().close()
    time.sleep(0.3)
    with _connect(gw) as again:
        again.sendall(REQUEST)
        assert (_response(again) or (0,))[0] == 200
    for sock in held:
        sock.close()


def test_a_low_open_file_limit_still_answers_every_client(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_POOL_SIZE="16")
    gw.proc.args = ["prlimit", "--nofile=256:256", *gw.proc.args]
    gw.start()
    time.sleep(0.5)
    held: list[socket.socket] = []
    statuses: list[int | None] = []
    try:
        for _ in range(300):
            sock = _connect(gw)
            held.append(sock)
            sock.sendall(REQUEST)
            answer = _response(sock, timeout=3)
            statuses.append(answer[0] if answer else None)
            if statuses.count(None) >= 3:
                break
        assert None not in statuses, f"{statuses.count(None)} clients got no answer"
        assert set(statuses) == {200, 503} and statuses[0] == 200
        held[0].sendall(REQUEST)
        assert (_response(held[0]) or (0,))[0] == 200
    finally:
        for sock in held:
            sock.close()
