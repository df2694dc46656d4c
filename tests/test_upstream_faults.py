"""Upstream faults (driven by the simulator's fault injection) reach the client as clean
OpenAI-format errors or cleanly terminated streams, and the usage log records them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.clients import client
from tests.support.processes import Gateway, Simulator, channel_spec, free_port

FAULTS = {
    "fault-500": "status=500",
    "fault-hang": "hang",
    "fault-trunc": "truncate=3",
    "fault-stall": "stall=2",
    "fault-badjson": "bad_json",
    "fault-nousage": "no_usage",
}


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("faults"),
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_FIRST_BYTE_TIMEOUT="1",
        AITRE_IDLE_TIMEOUT="1",
    )
    channels = [
        channel_spec(m, f"{simulator.url}/f/{spec}/v1", m, "gpt-4o-mini") for m, spec in FAULTS.items()
    ]
    channels.append(channel_spec("healthy", f"{simulator.url}/v1", "gpt-4o-mini"))
    channels.append(channel_spec("refused", f"http://127.0.0.1:{free_port()}/v1", "fault-refused"))
    g.apply({"prices": {"*": {"input_per_1m": "1", "output_per_1m": "2"}}, "channels": channels})
    g.start()
    yield g
    g.stop()


def _raw_error(gw: Gateway, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        gw.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.user_key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        timeout=30,
    )


def _assert_openai_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert "Traceback" not in resp.text


def test_upstream_500_is_a_clean_502_and_logged(gw: Gateway) -> None:
    resp = _raw_error(gw, "fault-500")
    _assert_openai_error(resp, 502, "upstream_error")
    row = gw.wait_log(resp.headers["x-request-id"])
    assert row["status_code"] == 502 and "500" in row["error"]
    with pytest.raises(openai.InternalServerError):
        client(gw).chat.completions.create(model="fault-500", messages=[{"role": "user", "content": "x"}])


def test_upstream_hang_times_out_cleanly(gw: Gateway) -> None:
    t0 = time.monotonic()
    resp = _raw_error(gw, "fault-hang")
    assert time.monotonic() - t0 < 5
    _assert_openai_error(resp, 502, "upstream_timeout")
    row = gw.wait_log(resp.headers["x-request-id"])
    assert row["status_code"] == 502 and "1s" in row["error"]


def test_connection_refused_is_a_clean_502(gw: Gateway) -> None:
    resp = _raw_error(gw, "fault-refused")
    _assert_openai_error(resp, 502, "upstream_unreachable")
    assert gw.wait_log(resp.headers["x-request-id"])["status_code"] == 502


def test_truncated_stream_ends_with_error_event_and_done(gw: Gateway) -> None:
    with gw.chat_stream(gw.user_key, "fault-trunc") as resp:
        assert resp.status_code == 200
        rid = resp.headers["x-request-id"]
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert '"error"' in lines[-2] and "upstream_stream_error" in lines[-2]
    content = [line for line in lines if '"content":"' in line and '"content":""' not in line]
    assert len(content) == 3
    row = gw.wait_log(rid)
    assert row["status_code"] == 502
    # The upstream's usage chunk never came: the delivered text is counted instead.
    assert row["completion_tokens"] == 3 and row["usage_estimated"] == 1


def test_truncated_stream_raises_in_the_sdk_after_the_delivered_text(gw: Gateway) -> None:
    got = []
    with pytest.raises(openai.APIError, match=r"before it was complete|cut short"):
        for chunk in client(gw).chat.completions.create(
            model="fault-trunc", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert len(got) == 3


def test_truncated_non_stream_body_is_a_502(gw: Gateway) -> None:
    _assert_openai_error(_raw_error(gw, "fault-trunc"), 502, "upstream_error")


def test_stalled_stream_is_cut_after_the_idle_timeout(gw: Gateway) -> None:
    t0 = time.monotonic()
    with gw.chat_stream(gw.user_key, "fault-stall") as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert time.monotonic() - t0 < 6
    assert lines[-1] == "data: [DONE]"
    assert "stalled" in lines[-2]


def test_invalid_json_from_upstream_is_a_502(gw: Gateway) -> None:
    _assert_openai_error(_raw_error(gw, "fault-badjson"), 502, "upstream_bad_response")


def test_missing_usage_is_counted_like_the_upstream_would(gw: Gateway) -> None:
    resp = _raw_error(gw, "fault-nousage")
    assert resp.status_code == 200 and "usage" not in resp.json()
    row = gw.wait_log(resp.headers["x-request-id"])
    assert row["usage_estimated"] == 1
    # The same request to an upstream that reports usage: the count must agree with it.
    real = _raw_error(gw, "gpt-4o-mini").json()["usage"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        real["prompt_tokens"],
        real["completion_tokens"],
    )
