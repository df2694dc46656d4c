"""Several worker processes of one gateway on one SQLite database: one of them claims (polls),
each runs what it creates, every task ends once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.processes import Gateway, wait_until
from tests.tasks.kit import FAST, StubUpstream, balance, start_gateway, submit_ok

pytestmark = pytest.mark.slow


def test_two_workers_on_sqlite_one_claims(make_gateway: Callable[..., Gateway], stub: StubUpstream) -> None:
    gw = start_gateway(make_gateway(AITRE_WORKERS="2", **FAST), stub)
    before = balance(gw)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: submit_ok(gw, cost=100, steps=5, step_s=0.4), range(30)))
    wait_until(
        lambda: gw.sql("SELECT COUNT(*) AS n FROM tasks WHERE billed_at IS NOT NULL")[0]["n"] == 30, 60
    )
    rows = gw.sql("SELECT id, status, history FROM tasks")
    assert {r["id"] for r in rows} == set(ids) and all(r["status"] == "succeeded" for r in rows)
    # Polls (progress after the first answer, and the end) come from the one claimer; the submits
    # from whichever worker took the request.
    pollers: Counter[str] = Counter()
    submitters: Counter[str] = Counter()
    for r in rows:
        for h in json.loads(r["history"]):
            if h["status"] == "submitting":
                submitters[h["by"]] += 1
            elif h["progress"] > 0:
                pollers[h["by"]] += 1
    assert len(pollers) == 1, pollers
    assert len(submitters) == 2, submitters  # both workers served (and ran) creates
    claimer = gw.sql("SELECT owner FROM leases WHERE name = 'tasks'")
    assert [r["owner"] for r in claimer] == list(pollers)
    assert balance(gw) == before - 30 * 100
