"""Per-key request and token rate limits (RPM, TPM) over a sliding 60-second window.

In-process: exact for one gateway process. (With several instances, each enforces the limit on
its own share; the Redis-backed limiter replaces this in multi-instance mode.)
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW = 60.0


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

    def admit(self, key: int, rpm: int, tpm: int, tokens: int) -> float | None:
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

    def correct(self, key: int, estimated: int, actual: int) -> None:
        """Replace a request's estimated tokens by what it really used."""
        toks = self._tokens.get(key)
        if not toks or estimated == actual:
            return
        toks.append((self._clock(), actual - estimated))
