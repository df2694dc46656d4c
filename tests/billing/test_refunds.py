"""Failures are refunded in full; a stream cut after some tokens pays only for what was
delivered (counted with tiktoken when the upstream sent no usage); the ledger stays exact."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.billing.helpers import balance, charged, consistent, new_user_key, wait_settled
from tests.support.processes import Gateway, Simulator, channel_spec, read_content_events, wait_until

# 500 units per input token, 1000 per output token: costs are exact small integers.
PRICE = {"input_per_1m": "1000", "output_per_1m": "2000"}
START = 10_000_000
PROMPT_TOKENS = 9  # "user", "\n", "hi" + OpenAI's framing


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("refunds"), AITRE_SIMULATOR_ENABLED="false", AITRE_FIRST_BYTE_TIMEOUT="1"
    )
    faults = {"m-500": "status=500", "m-hang": "hang", "m-trunc": "truncate=3", "m-slow": "chunk_delay=0.2"}
    channels = [
        channel_spec(m, f"{simulator.url}/f/{spec}/v1", m, "gpt-4o-mini") for m, spec in faults.items()
    ]
    channels.append(channel_spec("ok", f"{simulator.url}/v1", "gpt-4o-mini"))
    # gpt-4o-mini has a shipped price: override it too.
    g.apply({"prices": {"*": PRICE, "gpt-4o-mini": PRICE}, "channels": channels})
    g.start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return new_user_key(gw, "payer", START)


def _post(gw: Gateway, key: str, model: str, stream: bool = False, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}
    return httpx.post(
        gw.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.mark.parametrize("model", ["m-500", "m-hang"])
def test_upstream_failure_is_refunded_in_full(gw: Gateway, key: str, model: str) -> None:
    before = balance(gw, "payer")
    resp = _post(gw, key, model)
    assert resp.status_code == 502
    e = wait_settled(gw, resp.headers["x-request-id"])
    assert e["reserve"] < 0 and e["refund"] == -e["reserve"] and "settle" not in e
    assert gw.wait_log(resp.headers["x-request-id"])["quota"] == 0
    wait_until(lambda: balance(gw, "payer") == before)
    assert consistent(gw, "payer")


def test_success_is_charged_exactly(gw: Gateway, key: str) -> None:
    resp = _post(gw, key, "gpt-4o-mini", max_tokens=5)
    usage = resp.json()["usage"]
    cost = usage["prompt_tokens"] * 500 + usage["completion_tokens"] * 1000
    e = wait_settled(gw, resp.headers["x-request-id"])
    assert charged(e) == cost == PROMPT_TOKENS * 500 + 5 * 1000
    assert gw.wait_log(resp.headers["x-request-id"])["quota"] == cost


def test_cut_stream_pays_for_the_delivered_tokens_only(gw: Gateway, key: str) -> None:
    with httpx.stream(
        "POST",
        gw.api + "/chat/completions",
        json={"model": "m-trunc", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as resp:
        rid = resp.headers["x-request-id"]
        body = "".join(resp.iter_text())
    assert "upstream_stream_error" in body and body.rstrip().endswith("data: [DONE]")
    e = wait_settled(gw, rid)
    cost = charged(e)
    # No usage chunk came: 3 delivered one-token words, counted, plus the prompt.
    assert cost == PROMPT_TOKENS * 500 + 3 * 1000
    row = gw.wait_log(rid)
    assert row["quota"] == cost and row["completion_tokens"] == 3 and row["usage_estimated"] == 1
    assert consistent(gw, "payer")


def test_client_disconnect_pays_for_what_was_produced(gw: Gateway, key: str) -> None:
    full = _post(gw, key, "gpt-4o-mini", max_tokens=30).json()["usage"]["completion_tokens"]
    with gw.chat_stream(key, "m-slow", max_tokens=30) as resp:
        rid = resp.headers["x-request-id"]
        read_content_events(resp, 3)
    e = wait_settled(gw, rid)
    cost = charged(e)
    produced = (cost - PROMPT_TOKENS * 500) // 1000
    assert 3 <= produced < full
    row = gw.wait_log(rid)
    assert row["status_code"] == 499 and row["quota"] == cost


def test_refused_requests_cost_nothing(gw: Gateway) -> None:
    poor = new_user_key(gw, "poor", 100)
    resp = _post(gw, poor, "gpt-4o-mini")
    assert resp.status_code == 402
    assert resp.json()["error"]["code"] == "insufficient_quota"
    assert resp.headers.get("x-should-retry") == "false"
    time.sleep(0.5)
    assert balance(gw, "poor") == 100
    assert gw.sql("SELECT COUNT(*) FROM ledger WHERE hold_id = ?", (resp.headers["x-request-id"],))[0][0] == 0
    assert gw.wait_log(resp.headers["x-request-id"])["status_code"] == 402
