"""Client-given strings are bounded before anything is journaled: a model name that the usage
log cannot hold is refused with 400, and billing goes on, on SQLite and on PostgreSQL (where a
200-character model once made the books writer fail for good)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest

from tests.support.clients import client
from tests.support.pg import fresh_database
from tests.support.processes import Gateway, wait_until

MESSAGES: list[Any] = [{"role": "user", "content": "Say this is a test"}]
LONG = "m" * 200
HUGE = "m" * (2 * 1024 * 1024)


@pytest.fixture(params=["sqlite", "postgresql"])
async def gw(request: pytest.FixtureRequest, make_gateway: Callable[..., Gateway]) -> AsyncIterator[Gateway]:
    if request.param == "sqlite":
        yield make_gateway().start()
        return
    async with fresh_database() as url:
        g = make_gateway(AITRE_DATABASE_URL=url).start()
        yield g
        g.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _admin_logs(gw: Gateway) -> list[dict[str, Any]]:
    resp = httpx.get(
        gw.url + "/api/admin/logs", params={"per_page": 500}, headers=_auth(gw.admin_key), timeout=30
    )
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["data"]
    return rows


def _refusal(resp: httpx.Response) -> tuple[int, Any]:
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    error = body.get("error") or {}
    return resp.status_code, (error.get("type"), error.get("param"))


def _sdk_refusal(call: Callable[[], object]) -> tuple[int, Any]:
    try:
        call()
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return exc.status_code, (body.get("type"), body.get("param"))
    return 200, None


def test_overlong_model_names_are_refused_and_billing_goes_on(gw: Gateway) -> None:
    sdk = client(gw)
    user = _auth(gw.user_key)
    outcomes = []
    for model in (LONG, HUGE):
        outcomes.append(_sdk_refusal(lambda m=model: sdk.chat.completions.create(model=m, messages=MESSAGES)))
        outcomes.append(_sdk_refusal(lambda m=model: sdk.embeddings.create(model=m, input="hello")))
        completions = {"model": model, "prompt": "hi"}
        outcomes.append(
            _refusal(httpx.post(gw.api + "/completions", json=completions, headers=user, timeout=30))
        )
    audio = httpx.post(
        gw.api + "/audio/transcriptions",
        data={"model": LONG},
        files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
        headers=user,
        timeout=30,
    )
    outcomes.append(_refusal(audio))
    # Control characters (PostgreSQL refuses a NUL in text) are refused the same way.
    nul = {"model": "gpt-4o-mini\u0000x", "messages": MESSAGES}
    outcomes.append(_refusal(httpx.post(gw.api + "/chat/completions", json=nul, headers=user, timeout=30)))
    # A forwarded-for "address" that is none is not believed (the log's column holds 64).
    junk = httpx.post(
        gw.api + "/chat/completions",
        json={"model": "no-such-model", "messages": MESSAGES},
        headers={**user, "X-Forwarded-For": "x" * 300},
        timeout=30,
    )
    assert junk.status_code == 404

    # Billing goes on: a normal request is charged and logged, and nothing oversized was kept.
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    rid = raw.headers["x-request-id"]
    row = wait_until(lambda: next((r for r in _admin_logs(gw) if r["request_id"] == rid), None), timeout=20)
    assert row["status_code"] == 200 and row["quota"] > 0 and row["model"] == "gpt-4o-mini"
    balance = httpx.get(gw.url + "/api/user/balance", headers=user, timeout=30)
    assert balance.status_code == 200, balance.text
    rows = _admin_logs(gw)
    assert all(len(r["model"]) <= 128 and len(r["client_ip"]) <= 64 for r in rows)
    refused_row = next(r for r in rows if r["request_id"] == junk.headers["x-request-id"])
    assert refused_row["client_ip"] == "127.0.0.1"

    assert outcomes == [(400, ("invalid_request_error", "model"))] * len(outcomes)


def test_admin_api_bounds_model_names(gw: Gateway) -> None:
    admin = _auth(gw.admin_key)
    users = httpx.get(gw.url + "/api/admin/users", headers=admin, timeout=30).json()["data"]
    key = httpx.post(
        gw.url + "/api/admin/keys",
        json={"user_id": users[0]["id"], "model_mapping": {"gpt-4o-mini": LONG}},
        headers=admin,
        timeout=30,
    )
    assert key.status_code == 400, key.text
    channel = httpx.post(
        gw.url + "/api/admin/channels",
        json={"name": "long", "base_url": "http://127.0.0.1:9/v1", "models": [LONG]},
        headers=admin,
        timeout=30,
    )
    assert channel.status_code == 400, channel.text
    price = httpx.put(
        gw.url + f"/api/admin/prices/{LONG}", json={"per_call": 0.01}, headers=admin, timeout=30
    )
    assert price.status_code == 400, price.text
