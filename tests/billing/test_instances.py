"""Several gateway processes with their own data folders on one PostgreSQL database (and again
with balances in Redis): a process that starts or restarts never refunds a live neighbour's
requests; an instance killed with requests in flight is recovered by the survivors once its
heartbeat is old, each hold refunded once; a restart's refunds reach Redis. After everything
settles, every balance equals its ledger sum and the start minus what was served."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from aitre.billing.redis_bank import namespace
from tests.billing.helpers import new_user_key
from tests.billing.pg import balance_and_ledger, pg_one, pg_rows, redis_user_balance
from tests.billing.test_workers import REDIS_URL
from tests.support.pg import fresh_database
from tests.support.processes import Gateway, Simulator, channel_spec, wait_until

# 20 units per output token, nothing for input: "Say this is a test" with max_tokens=15 reserves
# 300 units and costs 100 (the answer, "This is a test!", is 5 tokens).
PRICE = {"input_per_1m": "0", "output_per_1m": "40"}
BODY = {"messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 15}
RESERVED, COST = 300, 100


@pytest.fixture
def pg_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    manager = fresh_database()
    try:
        yield loop.run_until_complete(manager.__aenter__())
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


def _env(url: str, redis: bool, **extra: str) -> dict[str, str]:
    env = {"AITRE_DATABASE_URL": url, "AITRE_SIMULATOR_ENABLED": "false", **extra}
    if redis:
        env["AITRE_REDIS_URL"] = REDIS_URL
    return env


def _setup(gw: Gateway, simulator: Simulator) -> None:
    channels = [
        channel_spec("slow", f"{simulator.url}/f/delay=20/v1", "slow-model", "gpt-4o-mini"),
        channel_spec("hang", f"{simulator.url}/f/hang/v1", "hang-model", "gpt-4o-mini"),
        channel_spec("fast", f"{simulator.url}/v1", "fast-model", "gpt-4o-mini"),
    ]
    gw.apply({"prices": {"*": PRICE}, "channels": channels})


def _call(gw: Gateway, key: str, model: str) -> int:
    try:
        r = httpx.post(
            gw.api + "/chat/completions",
            json={"model": model, **BODY},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
    except httpx.HTTPError:
        return 0  # the gateway died under it
    return r.status_code


def _in_flight(pool: ThreadPoolExecutor, gw: Gateway, key: str, model: str, n: int) -> list[Future[int]]:
    return [pool.submit(_call, gw, key, model) for _ in range(n)]


def _open_reserves(url: str, at_least: int) -> None:
    def count() -> bool:
        n = asyncio.run(
            pg_one(
                url,
                "SELECT COUNT(*) FROM ledger r WHERE r.kind = 'reserve' AND NOT EXISTS (SELECT 1 FROM ledger e "
                "WHERE e.hold_id = r.hold_id AND e.kind IN ('settle', 'refund', 'charge'))",
            )
        )
        return bool(n >= at_least)

    wait_until(count, timeout=20, interval=0.1)


def _state(url: str, username: str) -> tuple[int, int]:
    return asyncio.run(balance_and_ledger(url, username))


def _settles_to(url: str, username: str, expected: int, timeout: float = 20) -> None:
    """Wait until the user's balance and ledger sum both reach `expected`."""
    deadline = time.monotonic() + timeout
    while (state := _state(url, username)) != (expected, expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state == (expected, expected), f"{username}: balance and ledger sum {state}, expected {expected}"


def _endings(url: str) -> dict[str, Counter[str]]:
    """Per request hold, the kinds of its ledger rows."""
    rows = asyncio.run(pg_rows(url, "SELECT hold_id, kind FROM ledger WHERE hold_id LIKE 'req_%'"))
    out: dict[str, Counter[str]] = {}
    for r in rows:
        out.setdefault(r["hold_id"], Counter())[r["kind"]] += 1
    return out


def _ended_once(kinds: Counter[str]) -> bool:
    return (kinds["charge"] == 1 and sum(kinds.values()) == 1) or (
        kinds["reserve"] == 1 and kinds["settle"] + kinds["refund"] == 1 and sum(kinds.values()) == 2
    )


def _redis_balance(url: str, username: str) -> int | None:
    user_id = asyncio.run(pg_one(url, "SELECT id FROM users WHERE username = $1", username))
    return asyncio.run(redis_user_balance(REDIS_URL, namespace(url), int(user_id)))


@pytest.mark.parametrize("redis", [False, True], ids=["database", "redis"])
def test_a_starting_neighbour_leaves_requests_in_flight_alone(
    make_gateway: Callable[..., Gateway], simulator: Simulator, pg_url: str, redis: bool
) -> None:
    """The two reproductions: balance 1000, a request reserving 300 and costing 100 on A while
    B starts → 900 (not 1200); ten slow requests on A while B starts → all ten charged."""
    a = make_gateway(**_env(pg_url, redis))
    _setup(a, simulator)
    a.start()
    one = new_user_key(a, "one", 1000)
    ten = new_user_key(a, "ten", 10_000)
    b = make_gateway(**_env(pg_url, redis))
    with ThreadPoolExecutor(16) as pool:
        first = _in_flight(pool, a, one, "slow-model", 1)
        tens = _in_flight(pool, a, ten, "slow-model", 10)
        _open_reserves(pg_url, 11)
        b.start()  # B recovers its own (empty) data folder: A's requests are not its to refund
        done = [f.result() for f in first + tens if f.done()]
        assert not done, f"requests ended before B was up: {done}"
        assert first[0].result() == 200
        assert [f.result() for f in tens] == [200] * 10
    _settles_to(pg_url, "one", 1000 - COST)
    _settles_to(pg_url, "ten", 10_000 - 10 * COST)
    endings = _endings(pg_url)
    assert all(_ended_once(k) and not k["refund"] for k in endings.values()), endings
    if redis:
        assert _redis_balance(pg_url, "one") == 1000 - COST
        assert _redis_balance(pg_url, "ten") == 10_000 - 10 * COST
    b.stop()
    a.stop()


@pytest.mark.parametrize("redis", [False, True], ids=["database", "redis"])
def test_each_restarts_while_the_other_serves(
    make_gateway: Callable[..., Gateway], simulator: Simulator, pg_url: str, redis: bool
) -> None:
    """A stops cleanly and starts again while B serves slow requests; then B is killed with
    requests of its own in flight and starts again while A serves: the served requests are
    charged, B's interrupted ones refunded by its restart, each hold ended once."""
    a = make_gateway(**_env(pg_url, redis))
    _setup(a, simulator)
    a.start()
    key = new_user_key(a, "both", 100_000)
    b = make_gateway(**_env(pg_url, redis)).start()
    with ThreadPoolExecutor(16) as pool:
        served_by_b = _in_flight(pool, b, key, "slow-model", 4)
        _open_reserves(pg_url, 4)
        a.stop()
        a.start()
        assert [f.result() for f in served_by_b] == [200] * 4

        served_by_a = _in_flight(pool, a, key, "slow-model", 4)
        cut = _in_flight(pool, b, key, "slow-model", 2)
        _open_reserves(pg_url, 6)
        b.proc.signal(signal.SIGKILL)
        b.proc.wait(10)
        b.start()  # its own earlier incarnation is recovered at once: A's requests are left alone
        assert [f.result() for f in cut] == [0] * 2
        assert [f.result() for f in served_by_a] == [200] * 4
    for gw in (a, b):
        assert _call(gw, key, "fast-model") == 200
    expected = 100_000 - 10 * COST
    _settles_to(pg_url, "both", expected)
    endings = _endings(pg_url)
    assert len(endings) == 12 and all(_ended_once(k) for k in endings.values()), endings
    assert sum(k["refund"] for k in endings.values()) == 2
    if redis:
        assert _redis_balance(pg_url, "both") == expected
    a.stop()
    b.stop()


@pytest.mark.parametrize("redis", [False, True], ids=["database", "redis"])
def test_a_killed_instance_is_recovered_once_by_the_survivors(
    make_gateway: Callable[..., Gateway], simulator: Simulator, pg_url: str, redis: bool
) -> None:
    fast = {"AITRE_INSTANCE_HEARTBEAT_SECONDS": "0.3", "AITRE_INSTANCE_DEAD_SECONDS": "3"}
    a = make_gateway(**_env(pg_url, redis, **fast))
    _setup(a, simulator)
    a.start()
    key = new_user_key(a, "victim", 100_000)
    survivors = [make_gateway(**_env(pg_url, redis, **fast)).start() for _ in range(2)]
    with ThreadPoolExecutor(16) as pool:
        calls = _in_flight(pool, a, key, "hang-model", 6)
        _open_reserves(pg_url, 6)
        killed_at = time.monotonic()
        a.proc.signal(signal.SIGKILL)
        a.proc.wait(10)
        assert [f.result() for f in calls] == [0] * 6
    # Refunded by a survivor, once the heartbeat is older than the dead time (not before).
    _settles_to(pg_url, "victim", 100_000, timeout=30)
    assert time.monotonic() - killed_at >= 2.5
    a_id = asyncio.run(pg_one(pg_url, "SELECT owner FROM ledger WHERE kind = 'reserve' LIMIT 1"))
    endings = _endings(pg_url)
    assert len(endings) == 6 and all(_ended_once(k) and k["refund"] == 1 for k in endings.values()), endings
    rows = asyncio.run(pg_rows(pg_url, "SELECT id, recovered_by FROM instances"))
    recovered_by = {r["id"]: r["recovered_by"] for r in rows}
    live = {i for i, by in recovered_by.items() if by is None}
    assert len(live) == 2 and recovered_by[a_id] in live  # one survivor claimed it
    time.sleep(1.5)  # more sweeps by both survivors: nothing more happens
    assert _endings(pg_url) == endings
    assert _state(pg_url, "victim") == (100_000, 100_000)
    if redis:
        assert _redis_balance(pg_url, "victim") == 100_000
    for s in survivors:
        s.stop()


def test_a_restart_returns_its_refunds_to_redis(
    make_gateway: Callable[..., Gateway], simulator: Simulator, pg_url: str
) -> None:
    """A single worker with balances in Redis: what the restart refunds reaches Redis too."""
    a = make_gateway(**_env(pg_url, True))
    _setup(a, simulator)
    a.start()
    key = new_user_key(a, "redis", 10_000)
    with ThreadPoolExecutor(8) as pool:
        calls = _in_flight(pool, a, key, "hang-model", 4)
        _open_reserves(pg_url, 4)
        a.proc.signal(signal.SIGKILL)
        a.proc.wait(10)
        assert [f.result() for f in calls] == [0] * 4
    assert _redis_balance(pg_url, "redis") == 10_000 - 4 * RESERVED
    a.start()  # the same data folder: its earlier incarnation is recovered at once
    assert _state(pg_url, "redis") == (10_000, 10_000)
    assert _redis_balance(pg_url, "redis") == 10_000
    assert _call(a, key, "fast-model") == 200
    a.stop()


def _workers(parent: int) -> list[int]:
    """The worker processes of `aitre serve --workers N` (spawned children of the parent)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def test_a_dead_workers_journal_is_replayed_by_its_sibling(
    make_gateway: Callable[..., Gateway], simulator: Simulator
) -> None:
    """A worker killed with settlements only in its journal: its sibling, on the same data
    folder, claims it once the heartbeat is old and replays that journal before refunding what
    is left, so the requests it served are charged, not refunded."""
    gw = make_gateway(
        AITRE_WORKERS="2",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_FLUSH_SECONDS="600",  # the settlements stay in the workers' journals
        AITRE_INSTANCE_HEARTBEAT_SECONDS="0.3",
        AITRE_INSTANCE_DEAD_SECONDS="3",
    )
    _setup(gw, simulator)
    gw.start()
    key = new_user_key(gw, "workers", 100_000)
    assert gw.proc.proc is not None
    workers = wait_until(lambda: len(w := _workers(gw.proc.proc.pid)) == 2 and w, timeout=20)
    with httpx.Client(timeout=30) as http:  # new connections: both workers serve some
        for _ in range(12):
            r = http.post(
                gw.api + "/chat/completions",
                json={"model": "fast-model", **BODY},
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            assert r.status_code == 200
    assert gw.sql("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'")[0][0] == 0
    served = {
        r["pid"]: r["n"]
        for r in gw.sql(
            "SELECT i.pid AS pid, COUNT(*) AS n FROM ledger l JOIN instances i ON i.id = l.owner "
            "WHERE l.kind = 'reserve' GROUP BY i.pid"
        )
    }
    assert sum(served.values()) == 12
    victim = max(workers, key=lambda pid: served.get(pid, 0))
    assert served[victim] > 0
    os.kill(victim, signal.SIGKILL)
    # The sibling recovers it: every request of the dead worker ends, as a settlement.
    dead_ones = wait_until(
        lambda: gw.sql("SELECT COUNT(*) FROM instances WHERE recovered_by IS NOT NULL")[0][0], timeout=20
    )
    assert dead_ones == 1
    gw.stop()  # the live worker writes its own settlements on the way out
    kinds = Counter(r["kind"] for r in gw.sql("SELECT kind FROM ledger WHERE hold_id LIKE 'req_%'"))
    assert kinds == {"reserve": 12, "settle": 12}, kinds
    assert gw.sql("SELECT quota FROM users WHERE username = 'workers'")[0][0] == 100_000 - 12 * COST
