"""What one upstream or one client can take from the others, through a real gateway: the
connections to an upstream are capped per upstream and a request waits for one only so long."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support.processes import Gateway, Simulator, channel_spec


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
