"""Channel health: a channel that keeps failing is cooled down and skipped; one whose key the
upstream rejects is disabled with the reason recorded, and re-enabled by the prober when the
upstream accepts it again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.billing.helpers import new_user_key
from tests.support.processes import Gateway, Simulator, channel_spec, wait_until


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(tmp_path / "sim").start()
    yield sim
    sim.stop()


def test_rejected_key_disables_the_channel_and_the_prober_reenables_it(
    own_sim: Simulator, tmp_path: Path
) -> None:
    gw = Gateway(tmp_path / "gw", AITRE_SIMULATOR_ENABLED="false", AITRE_PROBE_INTERVAL_SECONDS="0.5")
    channels = [channel_spec("flaky-key", f"{own_sim.url}/v1", "hk-model", "gpt-4o-mini")]
    gw.apply({"prices": {"*": {"per_call": "0.001"}}, "channels": channels})
    gw.start()
    try:
        key = new_user_key(gw, "hk", 50_000_000)
        own_sim.set_faults({"spec": "status=401", "path": "/v1/"})
        resp = gw.chat(key, "hk-model")
        assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_auth_failed"
        row = wait_until(
            lambda: (r := gw.sql("SELECT enabled, disabled_reason FROM channels"))[0]["enabled"] == 0 and r[0]
        )
        assert row["disabled_reason"].startswith("auto: ")
        assert gw.chat(key, "hk-model").status_code == 503  # no usable channel while disabled
        # The prober keeps trying (and failing) while the key is still refused...
        wait_until(lambda: any(e["path"].endswith("/v1/models") for e in own_sim.events()), timeout=5)
        assert gw.sql("SELECT enabled FROM channels")[0]["enabled"] == 0
        # ...and turns the channel back on once the upstream accepts it.
        own_sim.reset()
        wait_until(lambda: gw.sql("SELECT enabled FROM channels")[0]["enabled"] == 1, timeout=10)
        assert gw.sql("SELECT disabled_reason FROM channels")[0]["disabled_reason"] == ""
        wait_until(lambda: gw.chat(key, "hk-model").status_code == 200, timeout=5)
    finally:
        gw.stop()


def test_failing_channel_is_cooled_down_and_skipped(own_sim: Simulator, tmp_path: Path) -> None:
    gw = Gateway(
        tmp_path / "gw",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_BREAKER_FAILURES="3",
        AITRE_BREAKER_COOLDOWN_SECONDS="60",
        AITRE_PROBE_INTERVAL_SECONDS="3600",
    )
    channels = [
        channel_spec("sick", f"{own_sim.url}/f/status=503/v1", "cd-model", "gpt-4o-mini", priority=5),
        channel_spec("fine", f"{own_sim.url}/v1", "cd-model", "gpt-4o-mini"),
    ]
    gw.apply({"prices": {"*": {"per_call": "0.001"}}, "channels": channels})
    gw.start()
    try:
        key = new_user_key(gw, "cd", 50_000_000)
        sick = gw.sql("SELECT id FROM channels WHERE name = 'sick'")[0]["id"]
        for _ in range(3):
            r = gw.chat(key, "cd-model")
            assert r.status_code == 200
            assert json.loads(gw.wait_log(r.headers["x-request-id"])["attempts"])[0]["channel_id"] == sick
        # The breaker is open now: the sick channel is not even tried.
        r = gw.chat(key, "cd-model")
        attempts = json.loads(gw.wait_log(r.headers["x-request-id"])["attempts"])
        assert [a["channel_id"] for a in attempts] != [sick] and sick not in [
            a["channel_id"] for a in attempts
        ]
    finally:
        gw.stop()
