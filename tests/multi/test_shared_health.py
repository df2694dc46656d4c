"""One instance's breaker protects all: a channel that failed on A is cooled on B too, before B
sent it anything, and B routes around it; a probe that finds it answering again, on B, closes
it on A as well."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multi.kit import PER_CALL, Pair, chat, cluster_env
from tests.multi.servers import MotoS3
from tests.support.processes import Gateway, Simulator, channel_spec


@pytest.fixture
def own_simulator(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(tmp_path / "sim").start()  # its faults are this test's alone
    yield sim
    sim.stop()


def _health(pair: Pair, gw: Gateway, name: str) -> dict[str, Any]:
    rows = pair.admin(gw, "GET", "/api/admin/channels/health").json()
    row: dict[str, Any] = next(r for r in rows if r["name"] == name)["health"]
    return row


def _sent(sim: Simulator, model: str) -> int:
    return sum(1 for e in sim.events() if e["path"].endswith("/chat/completions") and e.get("model") == model)


def _until(check: Callable[[], bool], limit: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not within {limit}s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_breaker_tripped_on_one_instance_cools_the_channel_on_the_other(
    make_pair: Callable[..., Pair], own_simulator: Simulator
) -> None:
    sim = own_simulator

    def setup(gw: Gateway) -> None:
        gw.apply(
            {
                "prices": {"m": PER_CALL},
                "channels": [
                    channel_spec("bad", f"{sim.url}/v1", "m", "gpt-4o-mini", priority=10),
                    channel_spec("good", f"{sim.url}/v1", "m", "gpt-4o"),
                ],
            }
        )

    pair = make_pair(
        setup,
        AITRE_BREAKER_FAILURES="2",
        AITRE_BREAKER_COOLDOWN_SECONDS="60",
        AITRE_PROBE_INTERVAL_SECONDS="3600",  # probes only when the test asks
    )
    _, _, key = pair.new_user("health", 1_000_000)
    assert _health(pair, pair.b, "bad")["breaker"] == "closed"  # (B's admin API is built on first use)
    # `bad` (tried first) fails its chat calls; `good`, the same simulator, sends another model.
    sim.set_faults({"spec": "status=500", "path": "/chat", "model": "gpt-4o-mini"})
    try:
        for _ in range(2):
            assert chat(pair.a, key, "m").status_code == 200  # failed over to `good`
        assert _health(pair, pair.a, "bad")["breaker"] == "open"
        took = _until(lambda: _health(pair, pair.b, "bad")["breaker"] == "open", 1.0)
        assert took < 1.0
        b_view = _health(pair, pair.b, "bad")
        assert b_view["requests_60s"] == 0  # B learnt it, it did not find out by failing
        assert 50 < b_view["cooldown_remaining_s"] <= 60
        assert b_view["last_error"]  # what A saw
        before = _sent(sim, "gpt-4o-mini")
        for _ in range(5):
            assert chat(pair.b, key, "m").status_code == 200
        after = _sent(sim, "gpt-4o-mini")
        assert after == before, "B sent requests to the cooled channel"
    finally:
        sim.reset()
    # The channel answers again; a probe on B closes the breaker on A too.
    channels = pair.admin(pair.b, "GET", "/api/admin/channels").json()
    items = channels.get("data", channels) if isinstance(channels, dict) else channels
    bad = next(c for c in items if c["name"] == "bad")
    probed = pair.admin(pair.b, "POST", f"/api/admin/channels/{bad['id']}/probe")
    assert probed.status_code == 200, probed.text
    assert _until(lambda: _health(pair, pair.a, "bad")["breaker"] == "closed", 1.0) < 1.0


def test_an_instance_started_later_learns_the_running_cooldowns(
    make_pair: Callable[..., Pair],
    make_gateway: Callable[..., Gateway],
    own_simulator: Simulator,
    s3: MotoS3,
) -> None:
    sim = own_simulator

    def setup(gw: Gateway) -> None:
        gw.apply(
            {
                "prices": {"m": PER_CALL},
                "channels": [
                    channel_spec("limited", f"{sim.url}/v1", "m", "gpt-4o-mini", priority=10),
                    channel_spec("spare", f"{sim.url}/v1", "m", "gpt-4o"),
                ],
            }
        )

    pair = make_pair(setup)
    _, _, key = pair.new_user("later", 1_000_000)
    # The upstream asks for 40 s of quiet: A honours it, and so does a gateway started after.
    sim.set_faults({"spec": "status=429,retry_after=40", "path": "/chat", "model": "gpt-4o-mini", "times": 1})
    try:
        assert chat(pair.a, key, "m").status_code == 200
    finally:
        sim.reset()
    assert _health(pair, pair.a, "limited")["breaker"] == "open"
    late = make_gateway(**cluster_env(pair.pg_url, s3)).start()
    late.admin_key = pair.a.admin_key
    state = _health(pair, late, "limited")
    assert state["breaker"] == "open"
    assert 30 < state["cooldown_remaining_s"] <= 40
