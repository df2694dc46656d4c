"""Idle client connections stay open longer than clients keep theirs (httpx and the openai SDK
drop an idle connection after 5 s), so a client never sends a request on a connection the
gateway is just closing; and the setting that bounds it is honoured."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support.processes import Gateway

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"


def _ask(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_an_idle_connection_outlives_the_clients_keepalive(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        assert _ask(sock).startswith(b"HTTP/1.1 200")
        time.sleep(5.5)
        assert _ask(sock).startswith(b"HTTP/1.1 200")  # the same connection, still open


def test_the_keepalive_setting_closes_idle_connections(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "gw", AITRE_KEEPALIVE_SECONDS="1").start()
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
            assert _ask(sock).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)
            assert sock.recv(4096) == b""  # closed by the gateway
    finally:
        gw.stop()
