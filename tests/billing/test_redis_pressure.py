"""Two workers sharing balances in Redis through a deliberately tiny connection pool: many more
requests in flight than connections must wait for one, not fail, and every unused part of a
reservation must get back to Redis (the live balance ends equal to the database's)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable

import httpx

from tests.support.processes import Gateway, wait_until

REDIS_URL = os.environ.get("AITRE_TEST_REDIS", "redis://127.0.0.1:6379/0")
N = 150


async def test_a_small_redis_pool_makes_requests_wait_not_fail(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_WORKERS="2", AITRE_REDIS_URL=REDIS_URL, AITRE_REDIS_MAX_CONNECTIONS="2")
    # Priced by the token: a reservation (1024 output tokens) is far above what a reply costs,
    # so every request hands units back to Redis when it settles.
    gw.apply({"prices": {"gpt-4.1-mini": {"input_per_1m": "1000", "output_per_1m": "2000"}}})
    gw.start()
    wait_until(lambda: httpx.get(gw.url + "/readyz").status_code == 200, timeout=20)
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    start = 10**9
    async with httpx.AsyncClient(base_url=gw.url, timeout=60, limits=httpx.Limits(max_connections=N)) as http:
        user = (
            await http.post("/api/admin/users", json={"username": "p", "quota": start}, headers=admin)
        ).json()
        key = (await http.post("/api/admin/keys", json={"user_id": user["id"]}, headers=admin)).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
        replies = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body, headers=auth) for _ in range(N))
        )
        assert Counter(r.status_code for r in replies) == {200: N}, [
            r.text for r in replies if r.status_code != 200
        ][:3]

        async def balances() -> tuple[int, int]:
            live = (await http.get("/api/user/balance", headers=auth)).json()["quota"]  # Redis
            stored = (await http.get(f"/api/admin/users/{user['id']}", headers=admin)).json()["quota"]  # DB
            return live, stored

        for _ in range(50):
            live, stored = await balances()
            if live == stored:
                break
            await asyncio.sleep(0.2)
        assert live == stored < start
        logs = (await http.get("/api/admin/logs", params={"per_page": 500}, headers=admin)).json()["data"]
        assert start - stored == sum(row["quota"] for row in logs if row["user_id"] == user["id"])


def test_no_redis_means_503_and_no_charge(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_WORKERS="2", AITRE_REDIS_URL="redis://127.0.0.1:1/0")
    gw.apply({"prices": {"gpt-4.1-mini": {"per_call": "0.001"}}})
    gw.start()
    resp = gw.chat(gw.user_key, "gpt-4.1-mini")
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "billing_unavailable" and resp.headers["retry-after"] == "1"
    assert gw.wait_log(resp.headers["x-request-id"])["quota"] == 0
