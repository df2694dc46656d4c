"""Instances that start at the same moment on one new PostgreSQL database: one migrates and
bootstraps, the others wait for it and start on the result (one admin, one set of keys)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.billing.pg import pg_one
from tests.multi.kit import cluster_env
from tests.support.processes import Gateway


def test_three_instances_starting_together_on_an_empty_database(
    make_gateway: Callable[..., Gateway], pg_url: str
) -> None:
    import asyncio

    gateways = [make_gateway(**cluster_env(pg_url, None)) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        for started in [pool.submit(g.start) for g in gateways]:
            started.result()
    assert asyncio.run(pg_one(pg_url, "SELECT COUNT(*) FROM users WHERE role = 'admin'")) == 1
    made = [g for g in gateways if g.admin_key]
    assert len(made) == 1  # the one that bootstrapped wrote the first keys
    for g in gateways:
        r = g.chat(made[0].user_key, "gpt-4o-mini")
        assert r.status_code == 404, r.text  # the key is known everywhere (no channel: simulator off)
        assert r.json()["error"]["code"] == "model_not_found"
