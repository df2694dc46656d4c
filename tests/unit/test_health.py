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


def test_decisions_are_told_on_and_remote_ones_applied_without_echo() -> None:
    """What `cluster.health` shares: a trip and a reset are told on once each; a cooldown
    learnt from another instance routes around the channel here and doubles the next trip,
    without being told on again; a burst of Retry-After makes one message."""
    now = [0.0]
    told: list[tuple[str, int, float, int]] = []
    h = ChannelHealth(failure_threshold=2, base_cooldown=10, max_cooldown=100, clock=lambda: now[0])
    h.on_cool = lambda ch, s, trips, err: told.append(("cool", ch, s, trips))
    h.on_reset = lambda ch: told.append(("reset", ch, 0.0, 0))
    h.failure(1, 1.0, "x")
    h.failure(1, 1.0, "x")
    assert told == [("cool", 1, 10.0, 1)]
    h.reset(1)
    assert told[-1] == ("reset", 1, 0.0, 0)
    told.clear()
    h.cool_remote(2, 20.0, 2, "seen elsewhere")
    assert told == [] and not h.available(2)
    assert h.snapshot(2)["last_error"] == "seen elsewhere"
    now[0] += 20.1
    assert h.available(2)
    h.failure(2, 1.0, "x")
    h.failure(2, 1.0, "x")
    assert told == [("cool", 2, 40.0, 3)]  # the remote trips count: 10 × 2² s
    told.clear()
    for _ in range(5):
        h.cool_for(3, 30.0, "429")
    assert told == [("cool", 3, 30.0, 0)]
    h.reset_remote(2)
    assert told == [("cool", 3, 30.0, 0)] and h.available(2)
