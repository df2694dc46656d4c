"""A client that goes away cancels the upstream request at once (no orphan streams), and is
billed only for what was produced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.billing.helpers import charged, new_user_key, wait_settled
from tests.support.processes import Gateway, Simulator, channel_spec, read_content_events, wait_until


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Simulator, str]]:
    root: Path = tmp_path_factory.mktemp("disconnect")
    sim = Simulator(root / "sim").start()
    gw = Gateway(root / "gw", AITRE_SIMULATOR_ENABLED="false")
    price = {"input_per_1m": "1000", "output_per_1m": "2000"}
    channels = [
        channel_spec("slow", f"{sim.url}/f/chunk_delay=0.2/v1", "slow-model", "gpt-4o-mini"),
        channel_spec("stuck", f"{sim.url}/f/hang/v1", "stuck-model", "gpt-4.1"),
    ]
    gw.apply({"prices": {"*": price}, "channels": channels})
    gw.start()
    key = new_user_key(gw, "dc", 50_000_000)
    yield gw, sim, key
    gw.stop()
    sim.stop()


def _upstream_event(sim: Simulator, model: str, after: float) -> dict[str, object]:
    events = [e for e in sim.events() if e["model"] == model and float(str(e["started"])) >= after]
    return events[-1] if events else {}


def test_stream_disconnect_closes_the_upstream_within_a_second(setup: tuple[Gateway, Simulator, str]) -> None:
    gw, sim, key = setup
    t0 = time.time()
    with gw.chat_stream(key, "slow-model", max_tokens=30) as resp:
        rid = resp.headers["x-request-id"]
        read_content_events(resp, 2)
    closed_at = time.time()
    ev = wait_until(
        lambda: (e := _upstream_event(sim, "gpt-4o-mini", t0)) and e["outcome"] != "open" and e, timeout=5
    )
    assert ev["outcome"] == "disconnected"
    assert float(str(ev["ended"])) - closed_at < 1.0
    row = gw.wait_log(rid)
    assert row["status_code"] == 499
    e = wait_settled(gw, rid)
    produced = (charged(e) - 9 * 500) // 1000
    assert 2 <= produced < 30


def test_non_stream_disconnect_cancels_the_waiting_upstream_call(
    setup: tuple[Gateway, Simulator, str],
) -> None:
    gw, sim, key = setup
    t0 = time.time()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.api + "/chat/completions",
            json={"model": "stuck-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(30, read=1.0),
        )
    gave_up = time.time()
    ev = wait_until(
        lambda: (e := _upstream_event(sim, "gpt-4.1", t0)) and e["outcome"] != "open" and e, timeout=5
    )
    assert ev["outcome"] == "disconnected"
    assert float(str(ev["ended"])) - gave_up < 1.0
    row = wait_until(lambda: gw.sql("SELECT * FROM usage_logs WHERE model = 'stuck-model'"), timeout=5)[-1]
    assert row["status_code"] == 499 and row["quota"] == 0
    assert wait_settled(gw, row["request_id"]).get("refund")
