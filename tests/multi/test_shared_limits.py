"""Two instances on one PostgreSQL and one Redis hold one set of limits: a key's quota buys the
same number of requests however they are spread, an RPM limit counts both, and a key revoked or
a channel disabled on one instance is refused by the other within a second (pub/sub: the
catalog poll is set to a minute here)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from redis import Redis

from aitre.billing.redis_bank import namespace
from tests.billing.test_workers import REDIS_URL
from tests.multi.kit import CALL_UNITS, PER_CALL, Pair, chat, spread, started_pair
from tests.multi.servers import MotoS3
from tests.support.processes import Gateway, Simulator, channel_spec, wait_until


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator, s3: MotoS3) -> Iterator[Pair]:
    with started_pair(tmp_path_factory.mktemp("limits"), s3, _setup(simulator)) as both:
        yield both


def _setup(simulator: Simulator) -> Callable[[Gateway], None]:
    def setup(gw: Gateway) -> None:
        gw.apply(
            {
                "prices": {"fast-model": PER_CALL, "other-model": PER_CALL},
                "channels": [
                    channel_spec("fast", f"{simulator.url}/v1", "fast-model", "gpt-4o-mini"),
                    channel_spec("other", f"{simulator.url}/v1", "other-model", "gpt-4o-mini"),
                ],
            }
        )

    return setup


def test_a_key_quota_for_n_requests_buys_exactly_n_across_both(pair: Pair, simulator: Simulator) -> None:
    n = 10
    _, key_id, key = pair.new_user("quota", 1_000_000, quota=n * CALL_UNITS)
    statuses = spread(pair.both, key, 4 * n, workers=40)
    assert statuses == {200: n, 402: 3 * n}, statuses
    # The books: the key's cap spent to the unit, the user charged for n calls and no more.
    deadline = time.monotonic() + 10
    while pair.books("quota") != (1_000_000 - n * CALL_UNITS,) * 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pair.books("quota") == (1_000_000 - n * CALL_UNITS,) * 2
    assert pair.one("SELECT remain_quota FROM tokens WHERE id = $1", key_id) == 0
    assert pair.one("SELECT COUNT(*) FROM usage_logs WHERE token_id = $1 AND status_code = 200", key_id) == n
    # And the next one is refused on either instance.
    for gw in pair.both:
        assert chat(gw, key).status_code == 402


def test_an_rpm_limit_holds_across_both(pair: Pair, simulator: Simulator) -> None:
    _, _, key = pair.new_user("rpm", 1_000_000, rpm=6)
    statuses = spread(pair.both, key, 20, workers=20)
    assert statuses == {200: 6, 429: 14}, statuses
    refused = chat(pair.b, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1


def _refused_within(gw: Gateway, key: str, model: str, status: int, limit: float) -> float:
    """Seconds until `gw` answers `status` to a call with `key`; fails past `limit`."""
    start = time.monotonic()
    while (r := chat(gw, key, model)).status_code != status:
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < limit, f"still {r.status_code} after {limit}s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_key_revoked_on_one_is_refused_by_the_other_within_a_second(
    pair: Pair, simulator: Simulator
) -> None:
    _, key_id, key = pair.new_user("revoked", 1_000_000)
    assert chat(pair.b, key).status_code == 200  # B knows the key (cached)
    revoked = pair.admin(pair.a, "DELETE", f"/api/admin/keys/{key_id}")
    assert revoked.status_code in (200, 204), revoked.text
    took = _refused_within(pair.b, key, "fast-model", 401, 1.0)
    assert took < 1.0
    assert chat(pair.a, key).status_code == 401


def test_a_channel_disabled_on_one_is_avoided_by_the_other_within_a_second(
    pair: Pair, simulator: Simulator
) -> None:
    _, _, key = pair.new_user("channels", 1_000_000)
    assert chat(pair.b, key, "other-model").status_code == 200
    channels = pair.admin(pair.a, "GET", "/api/admin/channels").json()
    items = channels.get("data", channels) if isinstance(channels, dict) else channels
    other = next(c for c in items if c["name"] == "other")
    changed = pair.admin(pair.a, "PATCH", f"/api/admin/channels/{other['id']}", json={"enabled": False})
    assert changed.status_code == 200, changed.text
    start = time.monotonic()
    while (r := chat(pair.b, key, "other-model")).status_code == 200:
        assert time.monotonic() - start < 1.0, "B still routes to the disabled channel"
        time.sleep(0.02)
    assert r.status_code in (404, 503), r.text
    assert time.monotonic() - start < 1.0


def test_a_cli_change_reaches_running_instances_over_pubsub(pair: Pair, simulator: Simulator) -> None:
    _, _, key = pair.new_user("cli", 1_000_000)
    assert chat(pair.b, key, "late-model").status_code in (400, 404)
    start = time.monotonic()
    pair.a.apply(
        {
            "prices": {"late-model": PER_CALL},
            "channels": [channel_spec("late", f"{simulator.url}/v1", "late-model", "gpt-4o-mini")],
        }
    )
    applied = time.monotonic()
    while (r := chat(pair.b, key, "late-model")).status_code != 200:
        assert time.monotonic() - applied < 1.0, r.text
        time.sleep(0.02)
    assert time.monotonic() - start < 30  # the CLI's own start-up, not the poll


def test_abuse_other_users_keys_and_no_key(pair: Pair, simulator: Simulator) -> None:
    """Across instances as on one: no key, a wrong key, a user's key against admin routes."""
    _, _, key = pair.new_user("mallory", 1_000_000)
    _, victim_key_id, _ = pair.new_user("victim", 1_000_000)
    for gw in pair.both:
        assert httpx.post(gw.api + "/chat/completions", json={"model": "fast-model"}).status_code == 401
        assert chat(gw, "sk-" + "x" * 48).status_code == 401
        # A user's key cannot revoke another user's key, on either instance.
        r = httpx.delete(
            f"{gw.url}/api/admin/keys/{victim_key_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert r.status_code in (401, 403)


def test_a_keys_requests_in_flight_are_capped_across_both(
    make_pair: Callable[..., Pair], simulator: Simulator, request: pytest.FixtureRequest
) -> None:
    """AITRE_KEY_MAX_INFLIGHT=2 with Redis: two in flight for the key across both instances
    (each would allow two of its own); a slot comes back when its request ends, and the slots of
    an instance that was killed come back once its alive mark runs out (10 s)."""

    def setup(gw: Gateway) -> None:
        gw.apply(
            {
                "prices": {"slow-model": PER_CALL, "fast-model": PER_CALL, "held-model": PER_CALL},
                "channels": [
                    channel_spec("slow", f"{simulator.url}/f/delay=2/v1", "slow-model", "gpt-4o-mini"),
                    channel_spec("held", f"{simulator.url}/f/delay=40/v1", "held-model", "gpt-4o-mini"),
                    channel_spec("fast", f"{simulator.url}/v1", "fast-model", "gpt-4o-mini"),
                ],
            }
        )

    pair = make_pair(setup, AITRE_KEY_MAX_INFLIGHT="2")
    _, key_id, key = pair.new_user("inflight", 1_000_000)
    redis = Redis.from_url(REDIS_URL)
    request.addfinalizer(redis.close)

    def in_flight() -> int:
        return sum(int(n) for n in redis.hgetall(f"{namespace(pair.pg_url)}:slots:{key_id}").values())

    statuses = spread(pair.both, key, 6, workers=6, model="slow-model")
    assert statuses == {200: 2, 429: 4}, statuses
    wait_until(lambda: in_flight() == 0)  # every slot back: the two slow ones ended
    assert chat(pair.a, key).status_code == 200
    # Two slow requests on B; B dies with them. A refuses the key until B's mark runs out.
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(chat, pair.b, key, "held-model") for _ in range(2)]
        wait_until(lambda: in_flight() == 2)  # both reserved on B
        pair.b.proc.kill()
        for f in held:
            with contextlib.suppress(httpx.HTTPError):
                f.result()
    busy = chat(pair.a, key)
    assert busy.status_code == 429, busy.text
    assert busy.json()["error"]["code"] == "too_many_concurrent_requests"
    killed = time.monotonic()
    while chat(pair.a, key).status_code == 429:
        assert time.monotonic() - killed < 15, "the dead instance's slots were not freed"
        time.sleep(0.5)
