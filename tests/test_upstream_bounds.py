"""What one upstream or one client can take from the others, through a real gateway: the
connections to an upstream are capped per upstream and a request waits for one only so long;
a client that stops reading a stream does not hold its upstream connection past the
client-write timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import orjson

from tests.support.processes import Gateway, Simulator, channel_spec
from tests.support.upstreams import endless_stream


def _body(model: str, stream: bool = False) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def test_a_hanging_upstream_gets_its_share_of_connections_and_no_more(
    simulator: Simulator, tmp_path: Path
) -> None:
    gw = Gateway(tmp_path, AITRE_POOL_SIZE_PER_UPSTREAM="1", AITRE_POOL_WAIT_SECONDS="0.5")
    # Two origins on one simulator: by address (hangs) and by name (answers).
    port = simulator.url.rsplit(":", 1)[1]
    gw.apply(
        {
            "prices": {"*": {"input_per_1m": "1", "output_per_1m": "2"}},
            "channels": [
                channel_spec("hang", f"http://127.0.0.1:{port}/f/hang/v1", "stuck", "gpt-4o-mini"),
                channel_spec("fine", f"http://localhost:{port}/v1", "gpt-4o-mini"),
            ],
        }
    )
    gw.start()
    try:
        headers = {"Authorization": f"Bearer {gw.user_key}"}
        async with httpx.AsyncClient(base_url=gw.api, headers=headers, timeout=30) as client:
            holding = asyncio.ensure_future(client.post("/chat/completions", json=_body("stuck")))
            await asyncio.sleep(1.0)  # it has the hanging upstream's one connection
            t0 = time.monotonic()
            busy = await client.post("/chat/completions", json=_body("stuck"))
            waited = time.monotonic() - t0
            assert busy.status_code == 503, busy.text
            error = busy.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "upstream_busy"
            assert busy.headers["retry-after"] == "1"
            assert 0.4 < waited < 5.0
            # The other upstream is not held up by the first.
            for stream in (False, True):
                fine = await client.post("/chat/completions", json=_body("gpt-4o-mini", stream))
                assert fine.status_code == 200, fine.text
            assert not holding.done()
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
        busy_id = busy.headers["x-request-id"]
        row = gw.wait_log(busy_id)
        assert row["status_code"] == 503 and row["quota"] == 0
    finally:
        gw.stop()


def test_a_client_that_stops_reading_a_stream_is_cut_off_and_pays_for_what_it_got(tmp_path: Path) -> None:
    with endless_stream() as upstream:
        gw = Gateway(tmp_path, AITRE_CLIENT_WRITE_TIMEOUT="1")
        gw.apply(
            {
                "prices": {"*": {"input_per_1m": "1", "output_per_1m": "2"}},
                "channels": [channel_spec("endless", upstream.url, "endless", "gpt-4o-mini")],
            }
        )
        gw.start()
        try:
            body = orjson.dumps(_body("endless", stream=True))
            request = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {gw.user_key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            with socket.socket() as client:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                client.settimeout(30)
                client.connect(("127.0.0.1", gw.port))
                client.sendall(request)
                head = client.recv(4096)  # the answer has started; from now on nothing is read
                assert head.startswith(b"HTTP/1.1 200"), head
                request_id = next(
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"x-request-id:")
                )
                # The gateway stops reading the upstream, gives the client its second, hangs up on both.
                assert upstream.hung_up.wait(30)
                row = gw.wait_log(request_id)
                assert row["status_code"] == 499
                assert row["error"] == "client stopped reading: nothing taken for 1s"
                assert row["completion_tokens"] > 0 and row["quota"] > 0  # what was sent is paid for
                assert row["usage_estimated"]
                try:
                    while client.recv(1 << 20):
                        pass
                except ConnectionResetError:
                    pass  # the gateway dropped the connection rather than wait on the client
        finally:
            gw.stop()
