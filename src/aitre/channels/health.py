"""Per-channel health: rolling error rate and latency, a circuit breaker, in-flight counts.

A channel whose recent requests keep failing is cooled down for a while (the breaker opens);
after the cooldown one request (or the prober) may try it again: success closes the breaker,
failure opens it again for twice as long (up to a cap). An upstream's `Retry-After` cools the
channel for exactly that long. The counts are in memory, per process: it is a routing hint, not a
record (that is the usage log's `attempts`). With several instances, a cooldown and a reset are
shared (`cluster.health`, through `on_cool` / `on_reset` and `cool_remote`), so one instance's
breaker protects them all.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class _State:
    # Per-second counts over the last minute ([second, requests, failures]) and the latest
    # successful latencies: memory stays bounded whatever the request rate.
    buckets: deque[list[int]] = field(default_factory=deque)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    cooldown_seconds: float = 0.0
    trips: int = 0
    inflight: int = 0
    last_error: str = ""
    last_error_at: float = 0.0


class ChannelHealth:
    def __init__(
        self,
        failure_threshold: int = 5,
        error_rate: float = 0.5,
        min_samples: int = 10,
        base_cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.error_rate = error_rate
        self.min_samples = min_samples
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self._states: dict[int, _State] = {}
        # Told of every cooldown this process decides (channel, seconds, trips, error) and every
        # reset: how other instances learn of them.
        self.on_cool: Callable[[int, float, int, str], None] | None = None
        self.on_reset: Callable[[int], None] | None = None

    def _state(self, channel_id: int) -> _State:
        state = self._states.get(channel_id)
        if state is None:
            state = self._states[channel_id] = _State()
        return state

    def _trim(self, state: _State, now: float) -> None:
        while state.buckets and now - state.buckets[0][0] > WINDOW_SECONDS:
            state.buckets.popleft()

    def _count(self, state: _State, now: float, failed: bool) -> None:
        second = int(now)
        if state.buckets and state.buckets[-1][0] == second:
            bucket = state.buckets[-1]
        else:
            bucket = [second, 0, 0]
            state.buckets.append(bucket)
            self._trim(state, now)
        bucket[1] += 1
        bucket[2] += failed

    @staticmethod
    def _totals(state: _State) -> tuple[int, int]:
        return sum(b[1] for b in state.buckets), sum(b[2] for b in state.buckets)

    # --- routing ---------------------------------------------------------------------------
    def available(self, channel_id: int) -> bool:
        state = self._states.get(channel_id)
        return state is None or self._clock() >= state.cooldown_until

    def inflight(self, channel_id: int) -> int:
        state = self._states.get(channel_id)
        return state.inflight if state else 0

    def begin(self, channel_id: int) -> None:
        self._state(channel_id).inflight += 1

    def end(self, channel_id: int) -> None:
        state = self._state(channel_id)
        state.inflight = max(0, state.inflight - 1)

    # --- outcomes --------------------------------------------------------------------------
    def success(self, channel_id: int, latency_ms: float) -> None:
        state = self._state(channel_id)
        now = self._clock()
        self._count(state, now, failed=False)
        state.latencies.append(latency_ms)
        state.consecutive_failures = 0
        if state.trips and now >= state.cooldown_until:
            state.trips = 0  # the breaker closes after a success past the cooldown
            state.cooldown_seconds = 0.0

    def failure(self, channel_id: int, latency_ms: float, error: str) -> None:
        state = self._state(channel_id)
        now = self._clock()
        self._count(state, now, failed=True)
        state.consecutive_failures += 1
        state.last_error, state.last_error_at = error[:300], time.time()
        total, failures = self._totals(state)
        rate_tripped = total >= self.min_samples and failures / total >= self.error_rate
        if state.consecutive_failures >= self.failure_threshold or rate_tripped:
            self._trip(channel_id, state, now)

    def _trip(self, channel_id: int, state: _State, now: float) -> None:
        if now < state.cooldown_until:
            return
        state.trips += 1
        state.cooldown_seconds = min(self.max_cooldown, self.base_cooldown * 2 ** (state.trips - 1))
        state.cooldown_until = now + state.cooldown_seconds
        state.consecutive_failures = 0
        state.buckets.clear()
        if self.on_cool is not None:
            self.on_cool(channel_id, state.cooldown_seconds, state.trips, state.last_error)

    def cool_for(self, channel_id: int, seconds: float, error: str) -> None:
        """The upstream asked us to back off (Retry-After): honour it exactly."""
        state = self._state(channel_id)
        until = self._clock() + seconds
        state.last_error, state.last_error_at = error[:300], time.time()
        # Told on only when it moves the end noticeably: a burst of 429s makes one message.
        if until > state.cooldown_until + 0.5 and self.on_cool is not None:
            self.on_cool(channel_id, seconds, state.trips, state.last_error)
        state.cooldown_until = max(state.cooldown_until, until)

    def cool_remote(self, channel_id: int, seconds: float, trips: int, error: str) -> None:
        """Another instance cooled the channel for `seconds` from now (its breaker tripped, or the
        upstream asked it to back off): route around it here too."""
        state = self._state(channel_id)
        state.cooldown_until = max(state.cooldown_until, self._clock() + seconds)
        state.cooldown_seconds = max(state.cooldown_seconds, seconds)
        state.trips = max(state.trips, trips)  # so the next trip here doubles as it would there
        state.consecutive_failures = 0
        state.buckets.clear()
        if error:
            state.last_error, state.last_error_at = error[:300], time.time()

    def reset(self, channel_id: int) -> None:
        self._states.pop(channel_id, None)
        if self.on_reset is not None:
            self.on_reset(channel_id)

    def reset_remote(self, channel_id: int) -> None:
        """Another instance found the channel answering again."""
        state = self._states.get(channel_id)
        if state is not None:
            inflight = state.inflight  # this process's requests on it are still in flight
            self._states[channel_id] = _State(inflight=inflight)

    def breaker(self, channel_id: int) -> str:
        """closed, open (cooling down) or half-open (cooled down, not yet proven healthy)."""
        state = self._states.get(channel_id)
        if state is None:
            return "closed"
        return "open" if self._clock() < state.cooldown_until else ("half-open" if state.trips else "closed")

    def cooling(self) -> list[int]:
        now = self._clock()
        return [cid for cid, s in self._states.items() if now < s.cooldown_until or s.trips]

    def snapshot(self, channel_id: int) -> dict[str, Any]:
        state = self._states.get(channel_id) or _State()
        now = self._clock()
        self._trim(state, now)
        n, failures = self._totals(state)
        ok_sorted = sorted(state.latencies)
        return {
            "requests_60s": n,
            "error_rate_60s": round(failures / n, 3) if n else 0.0,
            "latency_p50_ms": round(ok_sorted[len(ok_sorted) // 2], 1) if ok_sorted else None,
            "latency_p99_ms": round(ok_sorted[min(len(ok_sorted) - 1, int(len(ok_sorted) * 0.99))], 1)
            if ok_sorted
            else None,
            "inflight": state.inflight,
            "breaker": self.breaker(channel_id),
            "cooldown_remaining_s": round(max(0.0, state.cooldown_until - now), 1),
            "consecutive_failures": state.consecutive_failures,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at or None,
        }
