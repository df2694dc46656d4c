"""Crashes and neighbours: a gateway killed with 50 tasks in flight finishes all of them after a
restart, charging each once and sending none upstream twice; two gateways on one PostgreSQL
never run a task twice, finish the tasks of the one that dies, and never make the same
notifyHook call twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from aitre.store.db import make_engine
from tests.support.pg import fresh_database
from tests.support.processes import Gateway, wait_until
from tests.tasks.kit import FAST, HookReceiver, StubUpstream, balance, start_gateway, submit_ok, task

pytestmark = pytest.mark.slow
COST = 1000


def _submit_many(gateways: list[Gateway], count: int, **body: Any) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(submit_ok, gateways[i % len(gateways)], None, cost=COST, **body) for i in range(count)
        ]
        return [f.result() for f in futures]


def _upstream_counts(stub: StubUpstream) -> tuple[int, int]:
    stats = stub.stats()
    return len(stats["jobs"]), sum(stats["submits"].values())


def test_sigkill_with_50_tasks_in_flight_then_restart(
    make_gateway: Callable[..., Gateway], stub: StubUpstream
) -> None:
    gw = start_gateway(make_gateway(**FAST), stub)
    before = balance(gw)
    jobs_before, submits_before = _upstream_counts(stub)
    stub.control(submit_delay=1.5)  # submits in flight when the gateway dies
    try:
        ids = _submit_many([gw], 50, steps=4, step_s=0.5)
        statuses = Counter(r["status"] for r in gw.sql("SELECT status FROM tasks"))
        gw.proc.kill()  # SIGKILL
    finally:
        stub.control(submit_delay=0)
    assert statuses["submitting"] > 0, statuses  # the kill caught submits that may have arrived
    gw.start()

    def all_billed() -> bool:
        rows = gw.sql("SELECT COUNT(*) AS n FROM tasks WHERE billed_at IS NOT NULL")
        return bool(rows[0]["n"] == 50)

    wait_until(all_billed, timeout=90)
    rows = gw.sql("SELECT id, status, cost, submit_key FROM tasks")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r["status"] == "succeeded" for r in rows), Counter(r["status"] for r in rows)
    assert all(r["cost"] == COST for r in rows)
    # No submit repeated upstream: one job, one submit per task.
    jobs_after, submits_after = _upstream_counts(stub)
    assert (jobs_after - jobs_before, submits_after - submits_before) == (50, 50)
    # Charged once each: one reservation and one settlement per hold, one usage row per task.
    kinds = Counter(r["kind"] for r in gw.sql("SELECT kind FROM ledger WHERE hold_id LIKE 'task_%'"))
    assert kinds == {"reserve": 50, "settle": 50}
    logs = Counter(r["request_id"] for r in gw.sql("SELECT request_id FROM usage_logs"))
    assert all(logs[i] == 1 for i in ids)
    assert balance(gw) == before - 50 * COST
    assert task(gw, ids[0])["status"] == "succeeded"


async def _pg(url: str, query: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query)))
    finally:
        await engine.dispose()


async def test_two_gateways_on_postgresql_one_dies(
    make_gateway: Callable[..., Gateway], stub: StubUpstream, hooks: HookReceiver
) -> None:
    quick = {
        **FAST,
        "AITRE_FETCH_ALLOWED_CIDRS": "127.0.0.0/8",
        "AITRE_INSTANCE_HEARTBEAT_SECONDS": "0.5",
        "AITRE_INSTANCE_DEAD_SECONDS": "3",
        "AITRE_SECRET_KEY": Fernet.generate_key().decode(),  # one cluster: one key for its secrets
    }
    async with fresh_database() as url:
        a = start_gateway(make_gateway(AITRE_DATABASE_URL=url, **quick), stub)
        b = make_gateway(AITRE_DATABASE_URL=url, **quick).start()
        b.user_key, b.admin_key = a.user_key, a.admin_key
        before = balance(a)
        jobs_before, submits_before = _upstream_counts(stub)
        ids = _submit_many([a, b], 40, steps=10, step_s=1.0, notifyHook=hooks.url())
        for _ in range(300):
            running = await _pg(url, "SELECT COUNT(*) FROM tasks WHERE status = 'running'")
            if running[0][0] >= 20:
                break
            await asyncio.sleep(0.1)
        assert running[0][0] >= 20
        b.proc.kill()  # SIGKILL: its leases run out, a takes its tasks over

        async def billed() -> int:
            rows = await _pg(url, "SELECT COUNT(*) FROM tasks WHERE billed_at IS NOT NULL")
            return int(rows[0][0])

        for _ in range(600):
            if await billed() == 40:
                break
            await asyncio.sleep(0.2)
        rows = await _pg(url, "SELECT id, status, cost FROM tasks")
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert all(r[1] == "succeeded" and r[2] == COST for r in rows), Counter(r[1] for r in rows)
        jobs_after, submits_after = _upstream_counts(stub)
        assert (jobs_after - jobs_before, submits_after - submits_before) == (40, 40)
        kinds = Counter(r[0] for r in await _pg(url, "SELECT kind FROM ledger WHERE hold_id LIKE 'task_%'"))
        assert kinds == {"reserve": 40, "settle": 40}
        logs = Counter(r[0] for r in await _pg(url, "SELECT request_id FROM usage_logs"))
        assert all(logs[i] == 1 for i in ids)
        assert balance(a) == before - 40 * COST

        # Every call delivered once (a 2xx answer ends it), the last one each task's success.
        def settled() -> bool:
            done = {c.headers["x-aitre-task-id"] for c in hooks.calls if c.json()["status"] == "succeeded"}
            return done == set(ids)

        wait_until(settled, timeout=60)
        delivered = Counter(c.headers["x-aitre-delivery"] for c in hooks.calls)
        assert max(delivered.values()) == 1, [d for d, n in delivered.items() if n > 1]
        per_task = [
            json.loads(c.body)["status"] for c in hooks.calls if c.headers["x-aitre-task-id"] == ids[0]
        ]
        assert per_task[-1] == "succeeded"
        a.stop()
