"""The guarded fetcher connects to the address its policy checked: a name that resolves to a
refused and a permitted address is fetched from the permitted one only, and a name that resolves
only to refused ones is not fetched at all (no second lookup that a rebinding DNS could answer)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from aitre.media.fetch import FetchRefused, MediaFetcher
from aitre.security.ssrf import AddressPolicy
from tests.support.processes import free_port

ALLOWED = "127.0.0.5"


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.server_address[0].encode()  # which address was reached
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """The same port on 127.0.0.1 (refused) and on 127.0.0.5 (allowed)."""
    port = free_port()
    servers = [http.server.ThreadingHTTPServer((host, port), _Answer) for host in ("127.0.0.1", ALLOWED)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    for server in servers:
        server.shutdown()
        server.server_close()


class _Fixed(AbstractResolver):
    """A DNS that answers `hosts` for any name, and counts the lookups."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        return [
            ResolveResult(hostname=host, host=h, port=port, family=socket.AF_INET, proto=0, flags=0)
            for h in self.hosts
        ]

    async def close(self) -> None:
        pass


def _fetcher(dns: _Fixed) -> MediaFetcher:
    policy = AddressPolicy(allowed_cidrs=[f"{ALLOWED}/32"])
    return MediaFetcher(policy, max_bytes=1024, timeout=5, resolver=dns)


async def test_connects_only_to_a_checked_address(port: int) -> None:
    dns = _Fixed("127.0.0.1", ALLOWED)
    fetcher = _fetcher(dns)
    try:
        for _ in range(3):
            assert (await fetcher.fetch(f"http://images.example:{port}/a.png")).data == ALLOWED.encode()
    finally:
        await fetcher.close()


async def test_a_name_with_only_refused_addresses_is_not_fetched(port: int) -> None:
    dns = _Fixed("127.0.0.1")
    fetcher = _fetcher(dns)
    try:
        with pytest.raises(FetchRefused, match="may not fetch"):
            await fetcher.fetch(f"http://rebind.example:{port}/a.png")
        assert dns.lookups == 1
    finally:
        await fetcher.close()
