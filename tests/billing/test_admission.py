"""Admission is cheap whatever the client sends: the key and the balance are checked before a
big prompt is counted or an upload decoded, and the event loop keeps serving meanwhile."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.billing.helpers import balance, charged, consistent, new_user_key, wait_settled
from tests.support.processes import Gateway

# 500 units per input token, 1000 per output token.
PRICE = {"input_per_1m": "1000", "output_per_1m": "2000"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("admission"))
    g.apply({"prices": {"gpt-4o-mini": PRICE}})
    g.start()
    yield g
    g.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _chat(gw: Gateway, key: str, content: str, **extra: object) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(gw.api + "/chat/completions", json=body, headers=_auth(key), timeout=120)


def test_zero_balance_big_prompt_is_refused_fast_and_the_loop_keeps_serving(gw: Gateway) -> None:
    key = new_user_key(gw, "broke", 0)
    # 10 MB of base64: tiktoken counts it at about 1.5 MB/s, seconds of the event loop.
    prompt = base64.b64encode(random.Random(7).randbytes(7_500_000)).decode()
    result: dict[str, object] = {}

    def big() -> None:
        t0 = time.monotonic()
        result["resp"] = _chat(gw, key, prompt)
        result["seconds"] = time.monotonic() - t0

    waits: list[float] = []
    during: list[float] = []
    sender = threading.Thread(target=big)
    with httpx.Client(base_url=gw.url, timeout=30) as health:
        health.get("/healthz")
        sender.start()
        while sender.is_alive():
            t0 = time.monotonic()
            assert health.get("/healthz").status_code == 200
            waits.append(time.monotonic() - t0)
            if sender.is_alive():
                during.append(waits[-1])
            time.sleep(0.02)
    sender.join()
    resp = result["resp"]
    assert isinstance(resp, httpx.Response)
    assert resp.status_code == 402, resp.text[:300]
    assert resp.json()["error"]["code"] == "insufficient_quota"
    assert during, "no /healthz was answered while the big request was in flight"
    assert max(waits) < 1.0, f"/healthz waited {max(waits):.2f}s while a big prompt was admitted"
    assert float(str(result["seconds"])) < 5.0


def test_prompt_the_balance_pays_for_only_when_counted_exactly(gw: Gateway) -> None:
    # ~20 KB of English: past the inline count, so first bounded by its bytes (~20k tokens, 10M
    # units), which this balance cannot pay; its exact count (~4.5k tokens) it can.
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "reading"]
    rng = random.Random(3)
    prompt = " ".join(rng.choice(words) for _ in range(4000))
    key = new_user_key(gw, "modest", 4_000_000)
    resp = _chat(gw, key, prompt, max_tokens=10)
    assert resp.status_code == 200, resp.text[:300]
    usage = resp.json()["usage"]
    cost = charged(wait_settled(gw, resp.headers["x-request-id"]))
    assert cost == usage["prompt_tokens"] * 500 + usage["completion_tokens"] * 1000
    assert balance(gw, "modest") == 4_000_000 - cost
    assert consistent(gw, "modest")


def test_big_prompt_with_a_balance_for_it_is_reserved_by_its_bytes(gw: Gateway) -> None:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "reading"]
    prompt = " ".join(random.Random(4).choice(words) for _ in range(4000))
    key = new_user_key(gw, "rich", 50_000_000)
    resp = _chat(gw, key, prompt, max_tokens=10)
    assert resp.status_code == 200, resp.text[:300]
    usage = resp.json()["usage"]
    entries = wait_settled(gw, resp.headers["x-request-id"])
    # Settled at what the upstream reported, whatever was reserved.
    assert charged(entries) == usage["prompt_tokens"] * 500 + usage["completion_tokens"] * 1000
    assert consistent(gw, "rich")


def test_transcription_is_refused_before_its_audio_is_decoded(gw: Gateway) -> None:
    not_audio = {"file": ("speech.mp3", b"\x00not audio at all" * 1000, "audio/mpeg")}
    broke = new_user_key(gw, "broke-audio", 0)
    resp = httpx.post(
        gw.api + "/audio/transcriptions",
        data={"model": "whisper-1"},
        files=not_audio,
        headers=_auth(broke),
        timeout=30,
    )
    # Decoding first would have answered 400 invalid_file_format.
    assert resp.status_code == 402, resp.text
    assert resp.json()["error"]["code"] == "insufficient_quota"
    assert gw.wait_log(resp.headers["x-request-id"])["status_code"] == 402

    admin = _auth(gw.admin_key)
    user = httpx.post(
        gw.url + "/api/admin/users", json={"username": "chat-only", "quota": 10_000_000}, headers=admin
    ).json()
    limited = httpx.post(
        gw.url + "/api/admin/keys",
        json={"user_id": user["id"], "allowed_models": ["gpt-4o-mini"]},
        headers=admin,
    ).json()["key"]
    resp = httpx.post(
        gw.api + "/audio/transcriptions",
        data={"model": "whisper-1"},
        files=not_audio,
        headers=_auth(limited),
        timeout=30,
    )
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "model_not_allowed"
