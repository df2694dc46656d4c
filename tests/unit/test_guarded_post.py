"""The guarded POST notifyHooks go through: the address policy of `fetch`, no redirect followed,
bounded in time; refusals told apart from failures worth another try."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from aitre.media.fetch import FetchRefused, MediaFetcher, PostFailed
from aitre.security.ssrf import AddressPolicy
from tests.support.processes import free_port


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(f"{request.path} {await request.text()}")
        return web.Response(text="ok")

    async def moved(request: web.Request) -> web.Response:
        seen.append(request.path)
        raise web.HTTPTemporaryRedirect("/ok")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.add_routes([web.post("/ok", ok), web.post("/moved", moved), web.post("/slow", slow)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_posts_and_does_not_follow_redirects(receiver: tuple[str, list[str]]) -> None:
    host, seen = receiver
    fetcher = MediaFetcher(AddressPolicy(allowed_cidrs=["127.0.0.0/8"]), max_bytes=1000, timeout=5)
    try:
        assert (
            await fetcher.post(f"http://{host}/ok", b'{"a":1}', {"Content-Type": "application/json"}, 5)
            == 200
        )
        assert seen == ['/ok {"a":1}']
        assert await fetcher.post(f"http://{host}/moved", b"{}", {}, 5) == 307
        assert seen[-1] == "/moved"  # /ok was not called a second time
        with pytest.raises(PostFailed, match="no answer within"):
            await fetcher.post(f"http://{host}/slow", b"{}", {}, 0.3)
        with pytest.raises(PostFailed, match="cannot connect"):
            await fetcher.post(f"http://127.0.0.1:{free_port()}/x", b"{}", {}, 5)
    finally:
        await fetcher.close()


async def test_private_addresses_are_refused(receiver: tuple[str, list[str]]) -> None:
    host, seen = receiver
    port = host.split(":")[1]
    fetcher = MediaFetcher(AddressPolicy(), max_bytes=1000, timeout=5)
    try:
        with pytest.raises(FetchRefused, match="not public"):
            await fetcher.post(f"http://{host}/ok", b"{}", {}, 5)
        with pytest.raises(FetchRefused, match="may not fetch from"):
            await fetcher.post(f"http://localhost:{port}/ok", b"{}", {}, 5)
        with pytest.raises(FetchRefused, match="only http"):
            await fetcher.post("file:///etc/passwd", b"{}", {}, 5)
    finally:
        await fetcher.close()
    assert seen == []
