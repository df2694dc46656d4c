"""RPM and TPM windows in Redis: two limiters (two processes, or two machines) share one window."""

from __future__ import annotations

import os
import uuid

from redis.asyncio import Redis

from aitre.billing.redis_limits import RedisRateLimiter

REDIS_URL = os.environ.get("AITRE_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def _settled(*limiters: RedisRateLimiter) -> None:
    for limiter in limiters:
        await limiter.close()  # waits for the corrections sent in the background


async def test_two_limiters_share_one_window() -> None:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    one, two = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    a, b = RedisRateLimiter(one, ns), RedisRateLimiter(two, ns)
    try:
        assert await a.admit(1, rpm=3, tpm=0, tokens=0, request_id="r1") is None
        assert await b.admit(1, rpm=3, tpm=0, tokens=0, request_id="r2") is None
        assert await a.admit(1, rpm=3, tpm=0, tokens=0, request_id="r3") is None
        wait = await b.admit(1, rpm=3, tpm=0, tokens=0, request_id="r4")
        assert wait is not None and 59 <= wait <= 60
        assert await a.admit(2, rpm=3, tpm=0, tokens=0, request_id="r5") is None  # other keys unaffected

        assert await a.admit(3, rpm=0, tpm=100, tokens=80, request_id="t1") is None
        assert await b.admit(3, rpm=0, tpm=100, tokens=30, request_id="t2") is not None
        a.correct(3, estimated=80, actual=20, request_id="t1")  # it used less than estimated
        await _settled(a)
        assert await b.admit(3, rpm=0, tpm=100, tokens=30, request_id="t3") is None
        assert await b.admit(3, rpm=0, tpm=100, tokens=60, request_id="t4") is not None
        # A first request larger than the whole budget still goes through (as in one process).
        assert await a.admit(4, rpm=0, tpm=10, tokens=500, request_id="t5") is None
        # Windows expire on their own: nothing is left behind in Redis.
        ttl = await one.pttl(f"{ns}:rl:1:r")
        assert 0 < ttl <= 61_000
    finally:
        await _settled(a, b)
        await one.aclose()
        await two.aclose()
