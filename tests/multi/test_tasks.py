"""200 MJ tasks submitted across two instances on one PostgreSQL; one is SIGKILLed while its
tasks run. The survivor finishes every one of them exactly once: one upstream submit each, one
reservation and one settlement each, one usage row each, no notifyHook call made twice; the
pictures (in the shared bucket) are served by the survivor whoever fetched them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.multi.kit import Pair, cluster_env
from tests.multi.servers import MotoS3
from tests.simulator.mjkit import picture
from tests.support.processes import Gateway, Simulator
from tests.tasks.kit import HookReceiver

pytestmark = pytest.mark.slow

TASKS = 200
IMAGINE = 50_000  # mj_imagine's default price, $0.10, in units
MJ_KEY = "mj-upstream-secret"


@pytest.fixture
def mj_upstream(tmp_path: Path) -> Iterator[Simulator]:
    """A midjourney-proxy of its own (a gateway's built-in simulator dies with it): five steps
    of 0.6 s, so tasks are still running when an instance is killed."""
    sim = Simulator(tmp_path / "mj", MJ_KEY).start()
    r = httpx.post(
        sim.url + "/_sim/config", json={"mj_step_seconds": 0.6, "mj_steps": 5}, headers=sim.headers
    )
    r.raise_for_status()
    yield sim
    sim.stop()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


def _submit(gw: Gateway, key: str, hook: str, n: int) -> str:
    r = httpx.post(
        gw.url + "/mj/submit/imagine",
        json={"prompt": f"a lighthouse, take {n}", "notifyHook": hook},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["code"] == 1, r.text
    return str(r.json()["result"])


def test_200_tasks_on_two_instances_one_killed(
    make_gateway: Callable[..., Gateway],
    pg_url: str,
    s3: MotoS3,
    mj_upstream: Simulator,
    hooks: HookReceiver,
) -> None:
    env = cluster_env(
        pg_url,
        s3,
        AITRE_TASK_POLL_MIN_SECONDS="0.2",
        AITRE_TASK_POLL_MAX_SECONDS="0.5",
        AITRE_INSTANCE_HEARTBEAT_SECONDS="0.5",
        AITRE_INSTANCE_DEAD_SECONDS="3",
        AITRE_TASK_LEASE_SECONDS="60",  # a takeover must not wait for the dead one's leases
        AITRE_FETCH_ALLOWED_CIDRS="127.0.0.0/8",  # the notifyHook receiver is on loopback
        AITRE_MJ_MAX_OPEN_TASKS="1000",  # one user with all 200 open at once
    )
    a = make_gateway(**env).start()
    a.cli(
        "channel", "add", "mj", "--type", "midjourney-proxy", "--base-url", mj_upstream.url, "--key", MJ_KEY
    )
    b = make_gateway(**env).start()
    b.admin_key = a.admin_key
    pair = Pair(a, b, pg_url)
    start = 2 * TASKS * IMAGINE
    user_id, _, key = pair.new_user("painter", start)
    b_instance = pair.one(
        "SELECT id FROM instances WHERE stopped_at IS NULL ORDER BY started_at DESC LIMIT 1"
    )

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(_submit, pair.both[i % 2], key, hooks.url(), i) for i in range(TASKS)]
        ids = [f.result() for f in futures]
    assert len(set(ids)) == TASKS
    open_on_b = pair.one(
        "SELECT COUNT(*) FROM tasks WHERE lease_owner = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        b_instance,
    )
    ended = pair.one("SELECT COUNT(*) FROM tasks WHERE billed_at IS NOT NULL")
    b.proc.kill()  # SIGKILL, midway
    assert open_on_b > 0 and ended < TASKS, (open_on_b, ended)

    # B's tasks are taken over as soon as B is found gone (its heartbeat 3 s old), not when
    # their leases (60 s) run out.
    killed = time.monotonic()
    while pair.one("SELECT COUNT(*) FROM tasks WHERE billed_at IS NOT NULL") < TASKS:
        assert time.monotonic() - killed < 25, "not every task ended"
        time.sleep(0.3)
    assert pair.one("SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'") == TASKS
    # One upstream job per task: nothing submitted twice.
    submits = [e for e in mj_upstream.events() if e["path"].endswith("/mj/submit/imagine")]
    assert len(submits) == TASKS
    # Charged once each.
    kinds = Counter(
        (r["kind"], r["amount"])
        for r in _rows(
            pair, "SELECT kind, amount FROM ledger WHERE hold_id LIKE 'task_%' AND user_id = $1", user_id
        )
    )
    assert kinds == {("reserve", -IMAGINE): TASKS, ("settle", 0): TASKS}, kinds
    logs = Counter(
        r["request_id"] for r in _rows(pair, "SELECT request_id FROM usage_logs WHERE user_id = $1", user_id)
    )
    assert all(logs[i] == 1 for i in ids) and len(logs) == TASKS
    assert pair.books("painter") == (start - TASKS * IMAGINE,) * 2
    # No notifyHook call made twice (a call cut off by the kill is not made again).
    deliveries = Counter(c.headers.get("x-aitre-delivery") for c in hooks.calls)
    assert deliveries and max(deliveries.values()) == 1
    successes = Counter(c.headers.get("x-aitre-task-id") for c in hooks.calls if b'"SUCCESS"' in c.body)
    assert max(successes.values()) == 1
    interrupted = pair.one("SELECT COUNT(*) FROM task_deliveries WHERE status <> 'delivered'")
    assert len(successes) >= TASKS - interrupted
    # The survivor serves any task's picture, from the bucket.
    for task_id in (ids[1], ids[2], ids[-1]):  # ids[1], ids[-1]: submitted through the dead one
        fetched = httpx.get(
            f"{a.url}/mj/task/{task_id}/fetch", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert fetched["status"] == "SUCCESS"
        assert fetched["imageUrl"].startswith(a.url + "/media/")
        assert picture(fetched["imageUrl"]).size == (1024, 1024)


def _rows(pair: Pair, sql: str, *args: object) -> list[dict[str, object]]:
    import asyncio

    from tests.billing.pg import pg_rows

    return [dict(r) for r in asyncio.run(pg_rows(pair.pg_url, sql, *args))]
