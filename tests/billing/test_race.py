"""Quota is never overspent: many concurrent requests racing on one key with quota for exactly N
requests -> exactly N succeed, the balance ends exact, every request is logged."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx

from tests.billing.helpers import balance, consistent, ledger_sum, new_user_key
from tests.support.processes import Gateway, wait_until


async def _fire(gw: Gateway, key: str, n: int, body: dict[str, object]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=gw.api, limits=limits, timeout=60) as http:
        return await asyncio.gather(
            *(
                http.post("/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
                for _ in range(n)
            )
        )


def _check(gw: Gateway, key: str, username: str, responses: list[httpx.Response], n_ok: int) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: n_ok, 402: len(responses) - n_ok}, statuses
    refused = [r.json()["error"] for r in responses if r.status_code == 402]
    assert all(e["code"] == "insufficient_quota" for e in refused)
    token_id = gw.sql(
        "SELECT t.id FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.username = ?", (username,)
    )[0][0]
    rows = wait_until(
        lambda: (
            (r := gw.sql("SELECT status_code, quota FROM usage_logs WHERE token_id = ?", (token_id,)))
            and len(r) == len(responses)
            and r
        ),
        timeout=15,
    )
    assert Counter(r["status_code"] for r in rows) == statuses
    assert all(r["quota"] == 0 for r in rows if r["status_code"] == 402)
    wait_until(lambda: balance(gw, username) == 0, timeout=10)
    assert ledger_sum(gw, username) == 0

    def kinds() -> Counter[str]:
        rows = gw.sql(
            "SELECT kind FROM ledger l JOIN users u ON u.id = l.user_id WHERE u.username = ?", (username,)
        )
        return Counter(r["kind"] for r in rows)

    # Each success is a `charge` row, or a `reserve` and a `settle` row when a flush fell between.
    def ended() -> bool:
        k = kinds()
        return k["topup"] == 1 and k["charge"] + k["settle"] == n_ok and k["reserve"] == k["settle"]

    wait_until(ended, timeout=10)
    assert kinds()["refund"] == 0
    assert consistent(gw, username)


async def test_per_call_price_race(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_KEY_MAX_INFLIGHT="0")  # 200 at once on one key: the balance is what is raced
    gw.cli("price", "set", "gpt-4.1-mini", "--per-call", "0.001")  # 500 units a request
    gw.start()
    n = 50
    key = new_user_key(gw, "racer", 500 * n)
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    responses = await _fire(gw, key, 4 * n, body)
    _check(gw, key, "racer", responses, n)


async def test_token_price_race_streaming(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_KEY_MAX_INFLIGHT="0")
    # 500 units per input token, 1000 per output token: a request of 9 prompt tokens ("user",
    # "\n", "hi" and OpenAI's framing of 3 per message plus 3) and max_tokens=5 costs exactly
    # 9500 units, and the reservation is exact too.
    gw.cli("price", "set", "gpt-4.1", "--input", "1000", "--output", "2000")
    gw.start()
    n = 20
    key = new_user_key(gw, "streamer", 9500 * n)
    body = {
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stream": True,
    }
    responses = await _fire(gw, key, 4 * n, body)
    ok = [r for r in responses if r.status_code == 200]
    assert all(r.text.rstrip().endswith("data: [DONE]") for r in ok)
    _check(gw, key, "streamer", responses, n)
