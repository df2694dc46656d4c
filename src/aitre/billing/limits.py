"""Per-key request and token rate limits (RPM, TPM) over a sliding 60-second window.

`RateLimiter` is in-process: exact for one gateway process. With Redis configured, several
processes and instances share `redis_limits.RedisRateLimiter` instead. (Several processes without
Redis each enforce a key's limit on their own share of its requests: see docs/operations.md.)
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

WINDOW = 60.0


class Limiter(Protocol):
    async def admit(self, key: int, rpm: int, tpm: int, tokens: int, request_id: str) -> float | None:
        """Count a request of about `tokens` tokens; None if admitted, else seconds to wait."""
        ...

    def correct(self, key: int, estimated: int, actual: int, request_id: str) -> None:
        """Replace an admitted request's estimated tokens by what it really used."""
        ...

    async def close(self) -> None: ...


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[int, deque[float]] = {}
        self._tokens: dict[int, deque[tuple[float, int]]] = {}

    def _trim(self, key: int, now: float) -> None:
        reqs = self._requests.get(key)
        while reqs and now - reqs[0] >= WINDOW:
            reqs.popleft()
        toks = self._tokens.get(key)
        while toks and now - toks[0][0] >= WINDOW:
            toks.popleft()

    async def admit(self, key: int, rpm: int, tpm: int, tokens: int, request_id: str = "") -> float | None:
        return self.check(key, rpm, tpm, tokens)

    def check(self, key: int, rpm: int, tpm: int, tokens: int) -> float | None:
        """Count a request of about `tokens` tokens; None if admitted, else seconds to wait."""
        if rpm <= 0 and tpm <= 0:
            return None
        now = self._clock()
        self._trim(key, now)
        reqs = self._requests.setdefault(key, deque())
        if rpm > 0 and len(reqs) >= rpm:
            return max(1.0, math.ceil(reqs[0] + WINDOW - now))
        toks = self._tokens.setdefault(key, deque())
        if tpm > 0:
            used = sum(n for _, n in toks)
            if used + tokens > tpm and toks:
                return max(1.0, math.ceil(toks[0][0] + WINDOW - now))
        reqs.append(now)
        if tpm > 0:
            toks.append((now, tokens))
        return None

    def correct(self, key: int, estimated: int, actual: int, request_id: str = "") -> None:
        """Replace a request's estimated tokens by what it really used."""
        toks = self._tokens.get(key)
        if not toks or estimated == actual:
            return
        toks.append((self._clock(), actual - estimated))

    async def close(self) -> None:
        """Nothing to release: the windows live in this process."""


class InFlight:
    """Requests each key has open in this process (a stream until its last byte), under a cap, so
    that no one key can take all of a process's connections, upstream slots and memory. Per
    process, like the RPM/TPM windows without Redis: with N workers a key may have N × cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[int, int] = {}

    def enter(self, key: int) -> bool:
        """Take a slot for `key`; False (and nothing taken) when it has `cap` open already."""
        n = self._open.get(key, 0)
        if 0 < self.cap <= n:
            return False
        self._open[key] = n + 1
        return True

    def leave(self, key: int) -> None:
        n = self._open.get(key, 0) - 1
        if n > 0:
            self._open[key] = n
        else:
            self._open.pop(key, None)

    def open(self, key: int) -> int:
        return self._open.get(key, 0)
