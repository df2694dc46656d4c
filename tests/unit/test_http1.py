"""The upstream HTTP/1.1 client against raw TCP servers that answer byte by byte as each test
scripts them: framing, keep-alive and its races, timeouts, limits, back-pressure, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aitre.config import Settings
from aitre.relay import http1
from aitre.relay.http1 import UpstreamFailure
from aitre.relay.pool import Pool
from aitre.relay.upstream import Timeouts, Upstream, UpstreamRequest
from tests.support.upstreams import (
    OK,
    answering,
    ca_and_leaf,
    get,
    keep_alive_server,
    read_request,
    self_signed,
    serve,
)


async def test_keep_alive_reuses_one_connection_and_frames_the_request() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool()
        for _ in range(3):
            resp = await pool.request(
                "POST", f"http://user:pw@127.0.0.1:{server.port}/v1/x?a=1", {"X-Key": "k"}, b'{"q":1}'
            )
            assert resp.status == 200
            assert resp.headers["content-type"] == "application/json"
            assert resp.content_type == "application/json"
            assert await resp.read(1024, 5.0) == b'{"ok": true}'
            resp.release()
        await pool.close()
    assert server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/x?a=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head  # no userinfo
    assert "user:pw" not in head
    assert "Accept-Encoding: identity\r\n" in head
    assert "X-Key: k\r\nContent-Length: 7\r\n\r\n" in head
    assert head.endswith('\r\n\r\n{"q":1}')


async def test_chunked_body_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        pool = Pool()
        resp = await pool.request("GET", server.url + "/", {})
        assert await resp.readany(5.0) == b"hello"
        release.set()
        assert await resp.readany(5.0) == b" world"
        assert await resp.readany(5.0) == b""
        assert resp.complete
        resp.release()
        assert pool.open_connections == 1  # kept for the next request
        await pool.close()


async def test_a_body_that_ends_with_the_connection_is_whole_and_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async with serve(handler) as server:
        pool = Pool()
        assert await get(pool, server.url) == (200, {"content-type": "text/plain"}, b"until the end")
        assert await get(pool, server.url) == (200, {"content-type": "text/plain"}, b"until the end")
        await pool.close()
    assert server.connections == 2


async def test_connection_close_from_the_upstream_is_honoured() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with serve(answering(answer)) as server:
        pool = Pool()
        assert (await get(pool, server.url))[2] == b"ok"
        assert (await get(pool, server.url))[2] == b"ok"
        await pool.close()
    assert server.connections == 2


async def test_a_kept_connection_the_upstream_closed_is_retried_once_on_a_new_one() -> None:
    # Each connection answers one request, then closes without saying so: the keep-alive race.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)

    async with serve(handler) as server:
        pool = Pool()
        assert (await get(pool, server.url))[0] == 200
        await asyncio.sleep(0.2)  # the server has closed it by now, unbeknown to the pool
        assert (await get(pool, server.url))[0] == 200
        await pool.close()
    assert server.connections == 2


async def test_a_new_connection_closed_without_an_answer_fails_without_retry() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)

    async with serve(handler) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="without answering") as caught:
            await get(pool, server.url)
        assert caught.value.kind == "protocol"
        await pool.close()
    assert server.connections == 1


async def test_first_byte_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await reader.read()

    async with serve(handler) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match=r"did not answer within 0\.2s") as caught:
            await get(pool, server.url, first_byte_timeout=0.2)
        assert caught.value.kind == "timeout"
        await asyncio.sleep(0.05)
        assert pool.open_connections == 0  # dropped: its answer may still come
        await pool.close()


async def test_a_stalled_stream_times_out_and_a_cut_one_fails() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await writer.drain()
        if index == 0:
            await reader.read()  # stall
        # else: close, 95 bytes short

    async with serve(handler) as server:
        pool = Pool()
        resp = await pool.request("GET", server.url, {})
        assert await resp.readany(5.0) == b"first"
        with pytest.raises(UpstreamFailure, match=r"stalled for 0\.2s"):
            await resp.readany(0.2)
        resp.close()
        resp = await pool.request("GET", server.url, {})
        with pytest.raises(UpstreamFailure, match="cut short") as caught:
            await resp.read(1024, 5.0)
        assert caught.value.kind == "protocol"
        resp.close()
        await pool.close()


async def test_malformed_answers_and_refused_connections() -> None:
    async with serve(answering(b"NOT HTTP AT ALL\r\n\r\n")) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="malformed HTTP"):
            await get(pool, server.url)
        port = server.port
    with pytest.raises(UpstreamFailure, match="cannot connect") as caught:
        await get(pool, f"http://127.0.0.1:{port}/")  # the server is gone
    assert caught.value.kind == "connect"
    with pytest.raises(UpstreamFailure, match="not an http"):
        await get(pool, "ftp://example.com/")
    await pool.close()


async def test_body_size_limits() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + b"y" * 2048 + b"\r\n0\r\n\r\n"
    async with serve(answering(big, chunked)) as server:
        pool = Pool()
        for _ in range(2):
            resp = await pool.request("GET", server.url, {})
            with pytest.raises(UpstreamFailure, match="larger than 1024 bytes"):
                await resp.read(1024, 5.0)
            resp.close()
        await pool.close()


async def test_the_pool_limit_makes_requests_wait_for_a_connection() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool(limit=1, wait=0.2)
        first = await pool.request("GET", server.url, {})
        with pytest.raises(
            UpstreamFailure, match=r"all 1 connections to this upstream are busy; none came free within 0\.2s"
        ) as caught:
            await pool.request("GET", server.url, {})
        assert caught.value.kind == "busy"
        waiting = asyncio.ensure_future(get(pool, server.url))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await first.read(1024, 5.0)
        first.release()
        assert (await waiting)[0] == 200
        assert pool.open_connections == 1
        await pool.close()
    assert server.connections == 1


async def test_at_the_limit_an_idle_connection_to_another_upstream_makes_room() -> None:
    h1, r1 = await keep_alive_server()
    h2, r2 = await keep_alive_server()
    async with serve(h1) as one, serve(h2) as two:
        r1.append(one)
        r2.append(two)
        pool = Pool(limit=1)
        assert (await get(pool, one.url))[0] == 200
        assert (await get(pool, two.url, connect_timeout=1.0))[0] == 200
        assert pool.open_connections == 1
        await pool.close()


async def test_an_interim_100_continue_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
    async with serve(answering(answer)) as server:
        pool = Pool()
        assert await get(pool, server.url) == (201, {"content-length": "4"}, b"done")
        await pool.close()


async def test_repeated_headers_are_joined() -> None:
    answer = b"HTTP/1.1 200 OK\r\nVary: a\r\nVARY: b\r\nContent-Length: 0\r\n\r\n"
    async with serve(answering(answer)) as server:
        pool = Pool()
        assert (await get(pool, server.url))[1]["vary"] == "a, b"
        await pool.close()


async def test_header_injection_is_refused_before_anything_is_sent() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="line break"):
            await pool.request("GET", server.url, {"Authorization": "Bearer x\r\nX-Evil: 1"})
        with pytest.raises(UpstreamFailure, match="HTTP cannot carry"):
            await pool.request("GET", server.url, {"X-Name": "café ☕"})
        assert server.requests == []
        # A URL cannot smuggle a header either: line breaks go, spaces and the rest are escaped.
        await get(pool, server.url + "/a b\r\nX-Evil: 1/é?q=%41")
        await pool.close()
    (request,) = server.requests
    assert request.startswith(b"GET /a%20bX-Evil:%201/%C3%A9?q=%41 HTTP/1.1\r\n")
    assert b"\r\nX-Evil" not in request


async def test_reading_pauses_while_a_large_body_is_not_read() -> None:
    size = 8 * 1024 * 1024
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size
    async with serve(answering(answer)) as server:
        pool = Pool()
        resp = await pool.request("GET", server.url, {})
        await asyncio.sleep(0.3)  # plenty of time to take it all in, were reading not paused
        assert resp._unread <= 2 * http1._HIGH_WATER
        total = 0
        while chunk := await resp.readany(5.0):
            total += len(chunk)
        assert total == size
        resp.release()
        await pool.close()


async def test_a_cancelled_request_hangs_up_on_the_upstream() -> None:
    hung_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await reader.read()  # returns when the client closes
        hung_up.set()

    async with serve(handler) as server:
        pool = Pool()
        task = asyncio.ensure_future(get(pool, server.url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(hung_up.wait(), 5)
        await pool.close()


async def test_an_idle_connection_past_its_keepalive_is_not_reused() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool(keepalive=0.05)
        await get(pool, server.url)
        await asyncio.sleep(0.1)
        await get(pool, server.url)
        await pool.close()
    assert server.connections == 2


async def test_https_upstreams_with_the_configured_ca_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    handler, ref = await keep_alive_server()
    async with serve(handler, server_ctx) as server:
        ref.append(server)
        url = f"https://127.0.0.1:{server.port}/v1/models"
        timeouts = Timeouts(connect=5, first_byte=5, idle=5)
        trusting = Upstream(Settings(upstream_ca_file=cert))
        for _ in range(2):
            resp = await trusting.send(UpstreamRequest("GET", url), timeouts)
            assert await resp.read(1024, 5.0) == b'{"ok": true}'
            resp.release()
        await trusting.close()
        assert server.connections == 1
        # The system's trust store does not know this certificate.
        default = Upstream(Settings())
        with pytest.raises(UpstreamFailure, match="TLS with upstream") as caught:
            await default.send(UpstreamRequest("GET", url), timeouts)
        assert caught.value.kind == "connect"
        await default.close()


# -- framing ---------------------------------------------------------------------------------


async def _read_all(pool: Pool, url: str, whole: bool) -> bytes:
    """The body as `read` (a JSON answer) or as a stream of `readany` (audio, SSE) would get it."""
    resp = await pool.request("GET", url, {})
    try:
        if whole:
            return await resp.read(1 << 20, 5.0)
        out = b""
        while chunk := await resp.readany(5.0):
            out += chunk
        return out
    finally:
        resp.close()


def _cut(answer: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]:
    """Sends `answer`, then closes the connection (cleanly: a FIN)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    return handler


@pytest.mark.parametrize("coding", ["Chunked", "CHUNKED", "chunked", "identity, Chunked"])
@pytest.mark.parametrize("whole", [True, False], ids=["read", "readany"])
async def test_a_chunked_body_cut_short_is_a_failure_whatever_the_case(coding: str, whole: bool) -> None:
    # Cut inside a chunk, and after a whole chunk but before the last (zero) one.
    for body in (b"a\r\nhel", b"5\r\nhello\r\n"):
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: {coding}\r\n\r\n"
        async with serve(_cut(head.encode() + body)) as server:
            pool = Pool()
            with pytest.raises(UpstreamFailure, match="cut short") as caught:
                await _read_all(pool, server.url, whole)
            assert caught.value.kind == "protocol"
            await pool.close()


@pytest.mark.parametrize("content_type", ["application/json", "audio/mpeg"])
@pytest.mark.parametrize("whole", [True, False], ids=["read", "readany"])
async def test_a_content_length_body_cut_short_is_a_failure(content_type: str, whole: bool) -> None:
    answer = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n".encode()
    async with serve(_cut(answer + b'{"partial')) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="cut short"):
            await _read_all(pool, server.url, whole)
        await pool.close()


async def test_a_reset_cuts_even_a_body_that_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closing with a zero linger sends a reset, not a FIN

    async with serve(handler) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="cut short"):
            await _read_all(pool, server.url, whole=False)
        await pool.close()


async def test_trailers_are_read_and_dropped_and_the_connection_kept() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    )
    handler, ref = await keep_alive_server(answer)
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool()
        for _ in range(2):
            status, headers, body = await get(pool, server.url)
            assert (status, body) == (200, b"hello")
            assert "x-checksum" not in headers and headers["trailer"] == "X-Checksum"
        await pool.close()
    assert server.connections == 1


async def test_http10_upstreams() -> None:
    # With a length and no keep-alive: the answer is whole, the connection is not reused.
    async with serve(answering(*[b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 2)) as server:
        pool = Pool()
        assert (await get(pool, server.url))[2] == b"ok"
        assert (await get(pool, server.url))[2] == b"ok"
        await pool.close()
    assert server.connections == 2
    # Without a length: the body runs to the end of the connection.
    async with serve(_cut(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end")) as server:
        pool = Pool()
        assert await get(pool, server.url) == (200, {"content-type": "text/plain"}, b"to the end")
        await pool.close()
    # Asking for keep-alive, with a length: reused.
    kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    handler, ref = await keep_alive_server(kept)
    async with serve(handler) as server:
        ref.append(server)
        pool = Pool()
        for _ in range(3):
            assert (await get(pool, server.url))[2] == b"ok"
        await pool.close()
    assert server.connections == 1


async def test_an_ipv6_upstream() -> None:
    handler, ref = await keep_alive_server()
    async with serve(handler, host="::1") as server:
        ref.append(server)
        pool = Pool()
        assert server.url.startswith("http://[::1]:")
        assert await get(pool, server.url + "/v1/models") == (
            200,
            {"content-type": "application/json", "content-length": "12"},
            b'{"ok": true}',
        )
        await pool.close()
    assert f"Host: [::1]:{server.port}\r\n".encode() in server.requests[0]


async def test_tls_to_a_host_name_sends_it_as_sni_and_checks_the_certificate_against_it(
    tmp_path: Path,
) -> None:
    ca, cert, key = ca_and_leaf(tmp_path, "localhost")
    seen: list[str | None] = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,misc]
    handler, ref = await keep_alive_server()
    async with serve(handler, server_ctx) as server:
        ref.append(server)
        timeouts = Timeouts(connect=5, first_byte=5, idle=5)
        upstream = Upstream(Settings(upstream_ca_file=ca))
        resp = await upstream.send(
            UpstreamRequest("GET", f"https://localhost:{server.port}/v1/models"), timeouts
        )
        assert await resp.read(1024, 5.0) == b'{"ok": true}'
        resp.release()
        assert seen == ["localhost"]
        assert f"Host: localhost:{server.port}\r\n".encode() in server.requests[0]
        # The same server by its address: the certificate does not name it, so no connection.
        with pytest.raises(UpstreamFailure, match="TLS with upstream") as caught:
            await upstream.send(UpstreamRequest("GET", f"https://127.0.0.1:{server.port}/"), timeouts)
        assert caught.value.kind == "connect"
        await upstream.close()


async def test_a_transfer_coding_other_than_chunked_is_refused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    async with serve(answering(answer)) as server:
        pool = Pool()
        with pytest.raises(
            UpstreamFailure, match=r"transfer coding the gateway does not decode \(gzip, chunked\)"
        ):
            await get(pool, server.url)
        await pool.close()


async def test_heads_and_trailers_past_the_bound_are_refused() -> None:
    # Checked between reads: a read that ends the body may carry a bound's worth more.
    big = b"x" * (3 * http1._MAX_HEAD)
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + big + b"\r\nContent-Length: 2\r\n\r\nok"
    trailers = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Big: " + big + b"\r\n\r\n"
    )
    for answer in (head, trailers):
        async with serve(answering(answer)) as server:
            pool = Pool()
            with pytest.raises(UpstreamFailure, match="headers larger than"):
                await get(pool, server.url)
            await pool.close()

    # A head that never ends is refused once it passes the bound, not held in memory.
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                writer.write(b"y" * 16384)
                await writer.drain()

    async with serve(endless) as server:
        pool = Pool()
        with pytest.raises(UpstreamFailure, match="headers larger than"):
            await get(pool, server.url)
        await pool.close()


async def test_a_second_answer_to_one_request_is_not_taken_for_it() -> None:
    extra = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    async with serve(answering(OK + extra, OK)) as server:
        pool = Pool()
        assert await get(pool, server.url) == (
            200,
            {"content-type": "application/json", "content-length": "12"},
            b'{"ok": true}',
        )
        assert (await get(pool, server.url))[0] == 200
        await pool.close()
    assert server.connections == 2  # the connection that said too much was not reused
