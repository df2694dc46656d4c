"""The admin and user APIs check the key before they read a body, and cap the body: a stranger
cannot make the gateway hold hundreds of megabytes to be told the key is wrong."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psutil

from tests.support.processes import Gateway

BIG = 256 * 1024 * 1024


def _head(gw: Gateway, path: str, key: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: aitre\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer_before_the_body(gw: Gateway, path: str, key: str) -> tuple[int, dict[str, object]] | None:
    """Send the head of a 256 MB request and 64 KB of its body; the answer, if one comes."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(_head(gw, path, key, BIG) + b"x" * 65536)
        sock.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_wrong_key_is_refused_before_the_body_is_read(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway().start()
    for path, key, status, code in [
        ("/api/admin/users", "sk-wrong", 401, "invalid_api_key"),
        ("/api/user/redeem", "", 401, "missing_api_key"),
        ("/api/admin/users", gw.user_key, 403, "admin_required"),
    ]:
        answer = _answer_before_the_body(gw, path, key)
        assert answer is not None, f"{path}: no answer until the whole body came"
        assert answer[0] == status and answer[1]["error"]["code"] == code  # type: ignore[index]

    # The whole body sent anyway: answered, and the process never held it (seen before: +500 MB).
    proc = psutil.Process(gw.proc.proc.pid)  # type: ignore[union-attr]
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    def chunks() -> Iterator[bytes]:
        piece = b"x" * (1024 * 1024)
        for _ in range(BIG // len(piece)):
            yield piece

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        resp = httpx.post(
            gw.url + "/api/admin/users",
            content=chunks(),
            headers={"Authorization": "Bearer sk-wrong", "Content-Length": str(BIG)},
            timeout=120,
        )
    finally:
        done.set()
        watcher.join()
    assert resp.status_code == 401
    grown = peak[0] - before
    assert grown < 32 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB while the body came"


def test_an_api_body_over_the_cap_is_413(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_API_MAX_BODY_BYTES="100000").start()
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    big = {"username": "x" * 200_000}
    declared = httpx.post(gw.url + "/api/admin/users", json=big, headers=admin, timeout=30)
    streamed = httpx.post(
        gw.url + "/api/admin/users",
        content=iter([json.dumps(big).encode()]),  # chunked: no Content-Length to refuse early
        headers={**admin, "Content-Type": "application/json"},
        timeout=30,
    )
    for resp in (declared, streamed):
        assert resp.status_code == 413, resp.text[:200]
        assert resp.json()["error"]["code"] == "body_too_large"
        assert resp.headers["x-request-id"]
    ok = httpx.post(
        gw.url + "/api/admin/users", json={"username": "fits", "quota": 5}, headers=admin, timeout=30
    )
    assert ok.status_code == 201, ok.text
    assert httpx.get(gw.url + "/api/user/balance", headers=admin, timeout=30).status_code == 200
