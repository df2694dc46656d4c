"""One key cannot hold more than AITRE_KEY_MAX_INFLIGHT requests open at once (429
too_many_concurrent_requests), and its slot comes back on every way out: an answer, an error, a
refusal, a stream read to its end, a client that hangs up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.billing.helpers import new_user_key
from tests.support.processes import Gateway, Simulator, channel_spec, read_content_events, wait_until

PRICE = {"input_per_1m": "1", "output_per_1m": "2"}


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("inflight"), AITRE_SIMULATOR_ENABLED="false", AITRE_KEY_MAX_INFLIGHT="1"
    )
    faults = {"m-slow": "delay=3", "m-500": "status=500", "m-stream": "chunk_delay=0.3"}
    channels = [
        channel_spec(m, f"{simulator.url}/f/{spec}/v1", m, "gpt-4o-mini") for m, spec in faults.items()
    ]
    channels.append(channel_spec("ok", f"{simulator.url}/v1", "gpt-4o-mini"))
    g.apply({"prices": {"*": PRICE}, "channels": channels})
    g.start()
    yield g
    g.stop()


@pytest.fixture
def key(gw: Gateway, request: pytest.FixtureRequest) -> str:
    return new_user_key(gw, f"u-{request.node.name[:40]}", 10_000_000)


def _chat(gw: Gateway, key: str, model: str = "gpt-4o-mini", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        gw.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _free(gw: Gateway, key: str) -> bool:
    """The key's slot is free: a request is admitted (and answered)."""
    return _chat(gw, key).status_code == 200


def test_a_second_request_of_a_key_at_its_cap_gets_429(gw: Gateway, key: str) -> None:
    other = new_user_key(gw, "someone-else", 10_000_000)
    slow: dict[str, httpx.Response] = {}
    first = threading.Thread(target=lambda: slow.setdefault("resp", _chat(gw, key, "m-slow")))
    first.start()
    time.sleep(1.0)  # the slow request is in flight (its upstream waits 3 s)
    refused = _chat(gw, key)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "too_many_concurrent_requests" and error["type"] == "requests"
    assert refused.headers["retry-after"] == "1"
    assert _free(gw, other), "the cap is per key"
    first.join()
    assert slow["resp"].status_code == 200
    assert _free(gw, key)


def test_the_slot_comes_back_after_an_error_and_a_refusal(gw: Gateway, key: str) -> None:
    assert _chat(gw, key, "m-500").status_code == 502
    assert _free(gw, key)
    assert _chat(gw, key, "no-such-model").status_code == 404
    assert _free(gw, key)
    bad = httpx.post(
        gw.api + "/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert _free(gw, key)


def test_the_slot_comes_back_when_a_stream_ends_and_when_a_client_hangs_up(gw: Gateway, key: str) -> None:
    body = {"model": "m-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", gw.api + "/chat/completions", json=body, headers=headers, timeout=30) as resp:
        assert resp.status_code == 200
        assert b"[DONE]" in resp.read()
    assert _free(gw, key)

    with httpx.stream("POST", gw.api + "/chat/completions", json=body, headers=headers, timeout=30) as resp:
        read_content_events(resp, 1)
        assert _chat(gw, key).status_code == 429  # still streaming: the slot is held
    wait_until(lambda: _free(gw, key), timeout=10)

    # A non-stream request given up while its upstream is still thinking.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.api + "/chat/completions",
            json={**body, "model": "m-slow", "stream": False},
            headers=headers,
            timeout=httpx.Timeout(30, read=0.5),
        )
    wait_until(lambda: _free(gw, key), timeout=10)
