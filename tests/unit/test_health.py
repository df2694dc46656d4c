"""Channel health bookkeeping: breaker trips, cooldowns double, memory stays bounded."""

from __future__ import annotations

from aitre.channels.health import ChannelHealth


def test_consecutive_failures_open_the_breaker_and_cooldowns_double() -> None:
    now = [1000.0]
    h = ChannelHealth(failure_threshold=3, base_cooldown=10, max_cooldown=25, clock=lambda: now[0])
    for _ in range(2):
        h.failure(1, 5.0, "boom")
    assert h.available(1)
    h.failure(1, 5.0, "boom")
    assert not h.available(1)
    assert h.snapshot(1)["breaker"] == "open"
    now[0] += 10
    assert h.available(1) and h.snapshot(1)["breaker"] == "half-open"
    for _ in range(3):
        h.failure(1, 5.0, "again")
    assert not h.available(1)
    now[0] += 19.9
    assert not h.available(1)  # 20 s this time
    now[0] += 0.2
    h.success(1, 3.0)
    assert h.snapshot(1)["breaker"] == "closed"


def test_error_rate_trips_and_retry_after_cools() -> None:
    now = [0.0]
    h = ChannelHealth(failure_threshold=100, error_rate=0.5, min_samples=10, clock=lambda: now[0])
    for i in range(20):
        if i % 2:
            h.failure(7, 1.0, "x")
        else:
            h.success(7, 1.0)
    assert not h.available(7)
    h.cool_for(8, 3.0, "slow down")
    assert not h.available(8)
    now[0] += 3.1
    assert h.available(8)


def test_memory_is_bounded_by_time_not_by_requests() -> None:
    now = [0.0]
    h = ChannelHealth(clock=lambda: now[0])
    for i in range(100_000):
        now[0] = i / 1000  # 1000 requests a second for 100 s
        h.success(1, 1.0)
    snap = h.snapshot(1)
    assert 59_000 <= snap["requests_60s"] <= 61_000
    state = h._states[1]
    assert len(state.buckets) <= 61 and len(state.latencies) <= 256
