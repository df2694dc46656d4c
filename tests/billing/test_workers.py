"""Several worker processes share one balance exactly: on SQLite (`AITRE_WORKERS=2`) and on
PostgreSQL, a key with quota for exactly N requests gets exactly N out of 4N concurrent ones,
whichever worker serves them. Checked through the admin API (any database)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.support.pg import fresh_database
from tests.support.processes import Gateway, wait_until

N = 25
REDIS_URL = os.environ.get("AITRE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PRICE = {"gpt-4.1-mini": {"per_call": "0.001"}}  # 500 units a request


async def _race(gw: Gateway) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    async with httpx.AsyncClient(
        base_url=gw.url, timeout=60, limits=httpx.Limits(max_connections=4 * N)
    ) as http:
        user = (
            await http.post("/api/admin/users", json={"username": "shared", "quota": 500 * N}, headers=admin)
        ).json()
        key = (await http.post("/api/admin/keys", json={"user_id": user["id"]}, headers=admin)).json()["key"]
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
        replies = await asyncio.gather(
            *(
                http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
                for _ in range(4 * N)
            )
        )
        statuses = Counter(r.status_code for r in replies)
        assert statuses == {200: N, 402: 3 * N}, statuses

        async def state() -> tuple[int, Counter[str]]:
            u = (await http.get(f"/api/admin/users/{user['id']}", headers=admin)).json()
            ledger = (
                await http.get(f"/api/admin/users/{user['id']}/ledger?per_page=500", headers=admin)
            ).json()
            return u["quota"], Counter(e["kind"] for e in ledger["data"])

        for _ in range(50):
            quota, kinds = await state()
            if quota == 0 and kinds["settle"] + kinds["charge"] == N:
                break
            await asyncio.sleep(0.2)
        assert quota == 0
        # Each success: a `reserve` and a `settle` row, or one `charge` row when both were written in
        # one batch (a process that reserves in memory or in Redis).
        assert kinds["settle"] + kinds["charge"] == N and kinds["reserve"] == kinds["settle"], kinds
        assert kinds["refund"] == 0, kinds


async def _rpm_is_shared(gw: Gateway, rpm: int = 5) -> None:
    """A key's RPM holds across workers: of 4·rpm concurrent requests, exactly `rpm` pass."""
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    async with httpx.AsyncClient(
        base_url=gw.url, timeout=60, limits=httpx.Limits(max_connections=40)
    ) as http:
        user = (
            await http.post("/api/admin/users", json={"username": "rpm", "quota": 10**9}, headers=admin)
        ).json()
        made = await http.post("/api/admin/keys", json={"user_id": user["id"], "rpm": rpm}, headers=admin)
        key = made.json()["key"]
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
        replies = await asyncio.gather(
            *(
                http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
                for _ in range(4 * rpm)
            )
        )
    assert Counter(r.status_code for r in replies) == {200: rpm, 429: 3 * rpm}
    refused = [r for r in replies if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert all(59 <= int(r.headers["retry-after"]) <= 60 for r in refused)


@pytest.mark.parametrize("redis", [False, True], ids=["database-reservations", "redis-balances"])
async def test_two_workers_on_sqlite(make_gateway: Callable[..., Gateway], redis: bool) -> None:
    env = {"AITRE_REDIS_URL": REDIS_URL} if redis else {}
    gw = make_gateway(AITRE_WORKERS="2", **env)
    gw.apply({"prices": PRICE})
    gw.start()
    wait_until(lambda: httpx.get(gw.url + "/readyz").status_code == 200, timeout=20)
    await _race(gw)
    if redis:
        await _rpm_is_shared(gw)
    # Both workers' journals are folded back after a restart: nothing left behind.
    gw.stop()
    assert not list((gw.data_dir / "journal").glob("**/*.jsonl")) or all(
        p.stat().st_size == 0 for p in (gw.data_dir / "journal").glob("**/*.jsonl")
    )


@pytest.mark.parametrize("redis", [False, True], ids=["database-reservations", "redis-balances"])
async def test_two_workers_on_postgresql(make_gateway: Callable[..., Gateway], redis: bool) -> None:
    env = {"AITRE_REDIS_URL": REDIS_URL} if redis else {}
    async with fresh_database() as url:
        gw = make_gateway(AITRE_WORKERS="2", AITRE_DATABASE_URL=url, **env)
        gw.apply({"prices": PRICE})
        gw.start()
        wait_until(lambda: httpx.get(gw.url + "/readyz").status_code == 200, timeout=20)
        await _race(gw)
        gw.stop()
