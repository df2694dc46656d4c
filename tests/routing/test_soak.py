"""Soak: 200 concurrent clients against three channels that fail 20% of the time (errors, cut
streams, hangs) for AITRE_SOAK_SECONDS (default 60): no request goes unanswered, nobody is
charged twice, and the gateway's memory stays flat."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from tests.billing.helpers import balance, ledger_sum, new_user_key
from tests.support.processes import Gateway, Simulator, channel_spec, wait_until

CLIENTS = 200
SECONDS = float(os.environ.get("AITRE_SOAK_SECONDS", "60"))
FAULTS = ["p=0.2,status=500", "p=0.2,truncate=2", "p=0.2,hang"]


def _classify(resp_status: int, body: str, stream: bool) -> str:
    """'ok', 'error' (a proper error answer) or 'lost' (no answer the client can understand)."""
    if stream and resp_status == 200:
        if not body.rstrip().endswith("data: [DONE]"):
            return "lost"
        return "error" if '"error"' in body else "ok"
    if resp_status == 200:
        return "ok" if '"choices"' in body else "lost"
    return "error" if '"error"' in body else "lost"


async def _client(
    http: httpx.AsyncClient, key: str, deadline: float, tally: Counter[str], rng: random.Random
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        stream = rng.random() < 0.5
        body = {
            "model": "soak",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8,
            "stream": stream,
        }
        try:
            resp = await http.post("/chat/completions", json=body, headers=headers)
            tally[_classify(resp.status_code, resp.text, stream)] += 1
        except httpx.HTTPError as exc:
            tally["lost"] += 1
            tally[f"exc:{type(exc).__name__}"] += 1


async def _load(gw: Gateway, key: str, seconds: float) -> Counter[str]:
    tally: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=gw.api, limits=limits, timeout=30) as http:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client(http, key, deadline, tally, random.Random(i)) for i in range(CLIENTS)))
    return tally


@pytest.mark.slow
async def test_soak_with_random_faults(tmp_path: Path) -> None:
    sim = Simulator(tmp_path / "sim").start()
    gw = Gateway(
        tmp_path / "gw",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_FIRST_BYTE_TIMEOUT="2",
        AITRE_IDLE_TIMEOUT="2",
        AITRE_KEY_MAX_INFLIGHT="0",  # 200 clients share one key: the channels' faults are the test
    )
    try:
        channels = [
            channel_spec(f"c{i}", f"{sim.url}/f/{spec}/v1", "soak", "gpt-4o-mini")
            for i, spec in enumerate(FAULTS)
        ]
        gw.apply(
            {"prices": {"soak": {"input_per_1m": "1000", "output_per_1m": "2000"}}, "channels": channels}
        )
        gw.start()
        start = 10**12
        key = new_user_key(gw, "soaker", start)
        proc = psutil.Process(gw.proc.proc.pid)  # type: ignore[union-attr]

        first = await _load(gw, key, SECONDS / 3)
        rss_early = proc.memory_info().rss
        rest = await _load(gw, key, SECONDS * 2 / 3)
        rss_late = proc.memory_info().rss
        tally = first + rest
        total = tally["ok"] + tally["error"] + tally["lost"]
        print(f"soak: {total} requests, {dict(tally)}, rss {rss_early >> 20} -> {rss_late >> 20} MiB")

        assert total > CLIENTS * 5
        assert tally["lost"] == 0, dict(tally)
        assert tally["ok"] > tally["error"]  # failover turns most faults into answers
        assert rss_late - rss_early < 40 * 2**20, (rss_early, rss_late)

        # Every request is logged, every reservation ended exactly once, the ledger adds up.
        wait_until(lambda: gw.sql("SELECT COUNT(*) FROM usage_logs")[0][0] >= total, timeout=30)

        def unended() -> list[tuple[str, int, int, int]]:
            """Requests whose ledger is not exactly: one `charge`, or a `reserve` and one ending."""
            holds = gw.sql(
                "SELECT hold_id, SUM(kind = 'reserve') AS r, SUM(kind IN ('settle', 'refund')) AS t, "
                "SUM(kind = 'charge') AS c FROM ledger WHERE hold_id LIKE 'req_%' GROUP BY hold_id"
            )
            assert holds
            good = ((1, 1, 0), (0, 0, 1))
            return [
                (h["hold_id"], h["r"], h["t"], h["c"]) for h in holds if (h["r"], h["t"], h["c"]) not in good
            ]

        try:
            wait_until(lambda: not unended(), timeout=10)
        except AssertionError:
            bad = unended()[:5]
            logs = [
                dict(r) for h in bad for r in gw.sql("SELECT * FROM usage_logs WHERE request_id = ?", (h[0],))
            ]
            raise AssertionError(f"reservations not ended exactly once: {bad}; their logs: {logs}") from None
        charged = gw.sql("SELECT COALESCE(SUM(quota), 0) FROM usage_logs")[0][0]
        wait_until(lambda: balance(gw, "soaker") == start - charged, timeout=10)
        assert ledger_sum(gw, "soaker") == balance(gw, "soaker")
    finally:
        gw.stop()
        sim.stop()
