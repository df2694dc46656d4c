"""Failover: a failing channel (500, hang, refused connection) is skipped for the next one before
the client sees a byte; client errors are not retried; 429s everywhere become one 429 with
Retry-After; the client pays once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.billing.helpers import charged, new_user_key, wait_settled
from tests.support.processes import Gateway, Simulator, channel_spec, free_port

CASES = {
    "fo-500": "status=500",
    "fo-hang": "hang",
    "fo-400": "status=400",
    "fo-429": "status=429,retry_after=7",
}


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("failover"), AITRE_SIMULATOR_ENABLED="false", AITRE_FIRST_BYTE_TIMEOUT="1"
    )
    sim = simulator.url
    channels = [
        channel_spec(f"{m}-bad", f"{sim}/f/{spec}/v1", m, "gpt-4o-mini", priority=10)
        for m, spec in CASES.items()
    ]
    channels.append(
        channel_spec("fo-refused-bad", f"http://127.0.0.1:{free_port()}/v1", "fo-refused", priority=10)
    )
    channels.append(
        channel_spec("fo-429-bad2", f"{sim}/f/status=429,retry_after=3/v1", "fo-429", "gpt-4o-mini")
    )
    for model in ("fo-500", "fo-hang", "fo-refused"):
        channels.append(channel_spec(f"{model}-good", f"{sim}/v1", model, "gpt-4o-mini"))
    g.apply({"prices": {"*": {"per_call": "0.001"}}, "channels": channels})
    g.start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return new_user_key(gw, "fo", 50_000_000)


def _channel(gw: Gateway, name: str) -> int:
    return int(gw.sql("SELECT id FROM channels WHERE name = ?", (name,))[0]["id"])


@pytest.mark.parametrize("model", ["fo-500", "fo-hang", "fo-refused"])
@pytest.mark.parametrize("stream", [False, True])
def test_first_channel_fails_second_serves(gw: Gateway, key: str, model: str, stream: bool) -> None:
    resp = gw.chat(key, model, stream)
    assert resp.status_code == 200, resp.text
    if stream:
        assert resp.text.rstrip().endswith("data: [DONE]") and '"error"' not in resp.text
    rid = resp.headers["x-request-id"]
    row = gw.wait_log(rid)
    attempts = json.loads(row["attempts"])
    assert [a["channel_id"] for a in attempts] == [
        _channel(gw, f"{model}-bad"),
        _channel(gw, f"{model}-good"),
    ]
    assert attempts[0]["error"] and attempts[1]["status"] == 200
    assert row["channel_id"] == _channel(gw, f"{model}-good") and row["status_code"] == 200
    e = wait_settled(gw, rid)
    assert set(e) in ({"reserve", "settle"}, {"charge"}) and charged(e) == 500  # billed once


def test_client_errors_are_not_retried(gw: Gateway, key: str) -> None:
    resp = gw.chat(key, "fo-400")
    assert resp.status_code == 400
    row = gw.wait_log(resp.headers["x-request-id"])
    assert len(json.loads(row["attempts"])) == 1
    assert wait_settled(gw, resp.headers["x-request-id"]).get("refund")


def test_429_everywhere_is_one_429_with_retry_after_and_free(gw: Gateway, key: str) -> None:
    resp = gw.chat(key, "fo-429")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"  # the shortest wait any channel asked for
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    rid = resp.headers["x-request-id"]
    assert len(json.loads(gw.wait_log(rid)["attempts"])) == 2
    e = wait_settled(gw, rid)
    assert e["refund"] == -e["reserve"]
    assert gw.wait_log(rid)["quota"] == 0
