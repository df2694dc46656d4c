"""The upstream pool: connections per upstream within the process's cap, the bounded wait for
one, and when a request is sent again after its kept-alive connection turned out dead."""

from __future__ import annotations

import asyncio
import time

import pytest

from aitre.config import Settings
from aitre.relay.http1 import UpstreamFailure
from aitre.relay.pool import Pool
from aitre.relay.upstream import Timeouts, Upstream, UpstreamRequest
from tests.support.upstreams import (
    OK,
    Server,
    answering,
    get,
    keep_alive_server,
    read_request,
    serve,
    thread_server,
)

TIMEOUTS = Timeouts(connect=5, first_byte=30, idle=5)


def _hanging(server_ref: list[Server]) -> object:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        server_ref[0].requests.append(await read_request(reader))
        await reader.read()  # never answers; returns when the client hangs up

    return handler


async def test_a_hanging_upstream_cannot_take_the_connections_of_the_others() -> None:
    hang_ref: list[Server] = []
    ok_handler, ok_ref = await keep_alive_server()
    async with serve(_hanging(hang_ref)) as hanging, serve(ok_handler) as healthy:  # type: ignore[arg-type]
        hang_ref.append(hanging)
        ok_ref.append(healthy)
        upstream = Upstream(Settings(pool_size=4, pool_size_per_upstream=2, pool_wait_seconds=0.3))
        stuck = [
            asyncio.ensure_future(upstream.send(UpstreamRequest("POST", hanging.url, {}, b"{}"), TIMEOUTS))
            for _ in range(4)
        ]
        done, _ = await asyncio.wait(stuck, timeout=3, return_when=asyncio.FIRST_EXCEPTION)
        failures = [t.exception() for t in done]
        # Two hold the upstream's two connections; the other two waited their 0.3 s, then gave up.
        assert len(failures) == 2, failures
        for failure in failures:
            assert isinstance(failure, UpstreamFailure) and failure.kind == "busy"
            assert str(failure) == "all 2 connections to this upstream are busy; none came free within 0.3s"
        assert len(hanging.requests) == 2
        # Meanwhile another upstream is served at once, two at a time.
        t0 = time.monotonic()
        for _ in range(3):
            answers = await asyncio.gather(
                *(upstream.send(UpstreamRequest("GET", healthy.url), TIMEOUTS) for _ in range(2))
            )
            for resp in answers:
                assert await resp.read(1024, 5.0) == b'{"ok": true}'
                resp.release()
        assert time.monotonic() - t0 < 1.0
        assert upstream.pool.open_connections == 4
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        await upstream.close()
    assert healthy.connections == 2


async def test_a_connection_its_origin_frees_goes_to_that_origins_waiter() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool(limit=10, per_origin=1, wait=5.0)
        first = await pool.request("GET", server.url, {})
        waiting = asyncio.ensure_future(get(pool, server.url))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        assert await first.read(1024, 5.0) == b'{"ok": true}'
        first.release()
        assert (await waiting)[0] == 200
        assert pool.connections_to(server.url) == 1
        await pool.close()
    assert server.connections == 1


async def test_the_process_cap_holds_across_origins_and_an_idle_connection_makes_room() -> None:
    handlers = [await keep_alive_server() for _ in range(3)]
    async with serve(handlers[0][0]) as a, serve(handlers[1][0]) as b, serve(handlers[2][0]) as c:
        for (_, ref), server in zip(handlers, (a, b, c), strict=True):
            ref.append(server)
        pool = Pool(limit=2, per_origin=2, wait=5.0)
        on_a = await pool.request("GET", a.url, {})
        on_b = await pool.request("GET", b.url, {})
        waiting = asyncio.ensure_future(get(pool, c.url))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # room for C's origin, none in the process
        await on_a.read(1024, 5.0)
        on_a.release()  # idle now: C's request closes it to make room
        assert (await waiting)[0] == 200
        assert pool.connections_to(a.url) == 0
        assert pool.open_connections == 2
        await on_b.read(1024, 5.0)
        on_b.release()
        await pool.close()


async def test_a_waiter_cancelled_as_it_was_woken_passes_the_connection_on() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool(limit=10, per_origin=1, wait=5.0)
        first = await pool.request("GET", server.url, {})
        second = asyncio.ensure_future(get(pool, server.url))
        third = asyncio.ensure_future(get(pool, server.url))
        await asyncio.sleep(0.1)
        await first.read(1024, 5.0)
        first.release()  # wakes `second`...
        second.cancel()  # ...which leaves before it runs
        assert (await asyncio.wait_for(third, 2.0))[0] == 200
        with pytest.raises(asyncio.CancelledError):
            await second
        await pool.close()


# -- sending again after a dead kept-alive connection -----------------------------------------


def _answers_then_drops_the_second() -> tuple[object, list[Server]]:
    """The first connection answers one request, reads the next, and closes without a word;
    later connections answer everything."""
    ref: list[Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while request := await read_request(reader):
            ref[0].requests.append(request)
            if index == 0 and len(ref[0].requests) == 2:
                return  # read it, then went down
            writer.write(OK)
            await writer.drain()

    return handler, ref


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_request_the_upstream_may_have_read_is_not_sent_again(method: str) -> None:
    handler, ref = _answers_then_drops_the_second()
    async with serve(handler) as server:  # type: ignore[arg-type]
        ref.append(server)
        pool = Pool()
        resp = await pool.request(method, server.url, {}, b'{"n": 1}')
        assert await resp.read(1024, 5.0) == b'{"ok": true}'
        resp.release()
        with pytest.raises(UpstreamFailure, match="may have reached it, so it is not sent again") as caught:
            await pool.request(method, server.url, {}, b'{"n": 2}')
        assert caught.value.kind == "protocol"
        await pool.close()
    assert len(server.requests) == 2  # the upstream saw the second request once
    assert server.connections == 1


async def test_an_idempotent_request_is_sent_again_on_a_new_connection() -> None:
    handler, ref = _answers_then_drops_the_second()
    async with serve(handler) as server:  # type: ignore[arg-type]
        ref.append(server)
        pool = Pool()
        assert (await get(pool, server.url))[0] == 200
        assert (await get(pool, server.url))[0] == 200
        await pool.close()
    assert len(server.requests) == 3
    assert server.connections == 2


@pytest.mark.parametrize("checked", [True, False], ids=["polled", "not-polled"])
async def test_a_post_on_a_connection_closed_while_idle_goes_on_a_new_one(checked: bool) -> None:
    """The upstream closed the idle connection and its FIN is in our socket, but the loop has
    not run since (a busy loop, or the FIN came in the same turn): the pool must see it before
    writing, because once a POST is written into it, it is not sent again."""
    with thread_server() as server:
        pool = Pool()
        if not checked:
            pool.check_idle_after = float("inf")
        resp = await pool.request("POST", server.url, {}, b"{}")
        await resp.read(1024, 5.0)
        resp.release()
        await asyncio.sleep(Pool.check_idle_after * 1.1)  # idle past the check's threshold
        server.close_connection(0)
        time.sleep(0.2)  # noqa: ASYNC251 -- holds the loop on purpose: the FIN arrives, unread
        if checked:
            resp = await pool.request("POST", server.url, {}, b"{}")
            assert await resp.read(1024, 5.0) == b'{"ok": true}'
            resp.release()
            assert (server.requests, len(server.connections)) == (2, 2)
        else:  # written into the dead connection, and not sent again
            with pytest.raises(UpstreamFailure, match="not sent again"):
                await pool.request("POST", server.url, {}, b"{}")
            assert server.requests == 1
        await pool.close()


async def test_an_origin_left_without_connections_is_forgotten() -> None:
    # Upstreams point the gateway at many hosts (image links): each leaves nothing behind.
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    servers = [serve(answering(closing, closing)) for _ in range(5)]
    started = [await s.__aenter__() for s in servers]
    pool = Pool(limit=2, per_origin=1)
    for _ in range(2):
        for server in started:
            assert (await get(pool, server.url))[2] == b"ok"
    assert pool._hosts == {}
    # A fresh connection made by closing its origin's last idle one keeps the origin known.
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        assert (await get(pool, server.url))[0] == 200
        conn = await pool._acquire(next(iter(pool._hosts)), 5.0, fresh=True)
        assert pool.connections_to(server.url) == 1 and conn.origin in pool._hosts
        conn.abort()
        assert pool._hosts == {}
    await pool.close()
    for s in servers:
        await s.__aexit__(None, None, None)
