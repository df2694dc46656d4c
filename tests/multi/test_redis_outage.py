"""Redis killed under load and started again, empty: while it is away, billable requests get a
clear 503 (`billing_unavailable`, nothing charged); when it is back, service resumes without a
restart once the balances are loaded again from the database; no money is created or lost: the
database's books equal what was served, and Redis' balance equals the database's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aitre.billing.redis_bank import namespace
from tests.billing.pg import redis_user_balance
from tests.multi.kit import Pair, cluster_env
from tests.multi.servers import RedisServer
from tests.support.processes import Gateway, Simulator, channel_spec

# 20 units per output token: "Say this is a test" with max_tokens=15 reserves 300 and costs 100
# (the answer is 5 tokens), so every request gives 200 units back to Redis when it ends.
PRICE = {"input_per_1m": "0", "output_per_1m": "40"}
COST = 100
START = 10_000_000


class Load:
    """Threads calling both gateways in turn until stopped; every answer's status and code."""

    def __init__(self, gateways: list[Gateway], key: str, threads: int = 12) -> None:
        self.gateways, self.key = gateways, key
        self.results: list[tuple[int, int, str, float]] = []  # gateway index, status, code, time
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, n: int) -> None:
        body = {
            "model": "slow-model",
            "messages": [{"role": "user", "content": "Say this is a test"}],
            "max_tokens": 15,
        }
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=30) as client:
            i = n
            while not self._stop.is_set():
                which = i % len(self.gateways)
                i += 1
                r = client.post(self.gateways[which].api + "/chat/completions", json=body, headers=headers)
                code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
                with self._lock:
                    self.results.append((which, r.status_code, code, time.monotonic()))
                if r.status_code != 200:
                    time.sleep(0.02)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def since(self, moment: float) -> list[tuple[int, int, str, float]]:
        with self._lock:
            return [r for r in self.results if r[3] >= moment]


def _wait(check: Callable[[], bool], limit: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not within {limit}s"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_redis_killed_and_restarted_empty_under_load(
    make_gateway: Callable[..., Gateway], pg_url: str, redis_server: RedisServer, simulator: Simulator
) -> None:
    env = cluster_env(
        pg_url,
        None,
        redis_url=redis_server.url,
        AITRE_REDIS_RESEED_SECONDS="2",
        AITRE_CACHE_REFRESH_SECONDS="1",
    )
    a = make_gateway(**env)
    a.start()
    a.apply(
        {
            "prices": {"slow-model": PRICE},
            "channels": [
                channel_spec("slow", f"{simulator.url}/f/delay=0.05/v1", "slow-model", "gpt-4o-mini")
            ],
        }
    )
    b = make_gateway(**env).start()
    b.admin_key = a.admin_key
    pair = Pair(a, b, pg_url)
    user_id, _, key = pair.new_user("outage", START)
    load = Load([a, b], key).start()
    try:
        time.sleep(1.5)
        killed = time.monotonic()
        redis_server.stop()  # SIGKILL: everything in it is gone
        _wait(lambda: any(r[1] == 503 for r in load.since(killed)), 10)
        time.sleep(1.5)
        restarted = time.monotonic()
        redis_server.start()
        # Back by itself on both instances, without a restart.
        took = _wait(lambda: {r[0] for r in load.since(restarted) if r[1] == 200} == {0, 1}, 20)
        time.sleep(1.0)
    finally:
        load.stop()
    assert a.proc.proc is not None and a.proc.proc.poll() is None
    assert b.proc.proc is not None and b.proc.proc.poll() is None
    statuses = Counter((r[1], r[2]) for r in load.results)
    assert set(statuses) <= {(200, ""), (503, "billing_unavailable")}, statuses
    served = statuses[(200, "")]
    assert served > 50 and statuses[(503, "billing_unavailable")] > 0, statuses
    assert took < 2 + 5 + 3  # the reseed pause, the reconnect back-off, slack for a busy machine

    # The books: every hold ended once; the user paid exactly for what was served.
    def settled() -> bool:
        return pair.books("outage") == (START - served * COST,) * 2 and not pair.one(
            "SELECT COUNT(*) FROM ledger WHERE kind = 'reserve' AND ended_at IS NULL AND user_id = $1",
            user_id,
        )

    _wait(settled, 20)
    endings = pair.one(
        "SELECT COUNT(*) FROM ledger WHERE user_id = $1 AND kind IN ('settle', 'charge')", user_id
    )
    assert endings == served
    assert pair.one("SELECT COUNT(*) FROM ledger WHERE user_id = $1 AND kind = 'refund'", user_id) == 0
    # Redis holds the same balance as the database (loaded again after the reset, give-backs
    # owed from before the reset not added twice).
    ns = namespace(pg_url)
    in_redis = asyncio.run(redis_user_balance(redis_server.url, ns, user_id))
    assert in_redis == START - served * COST, (in_redis, START - served * COST)
