"""Which channel serves a request: the top priority tier, weighted within it; channels limited
to user groups; per-channel and per-key renaming of the upstream model; and a hard cap on the
requests in flight to a channel."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.billing.helpers import charged, new_user_key, wait_settled
from tests.support.processes import Gateway, Simulator, channel_spec


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("choice"), AITRE_SIMULATOR_ENABLED="false")
    sim = simulator.url
    heavy = channel_spec("w-heavy", f"{sim}/v1", "w-model", "gpt-4o-mini", priority=5)
    light = channel_spec("w-light", f"{sim}/v1", "w-model", "gpt-4o-mini", priority=5)
    heavy["weight"], light["weight"] = 3, 1
    channels = [
        heavy,
        light,
        channel_spec("w-backup", f"{sim}/v1", "w-model", "gpt-4o-mini", priority=0),
        channel_spec("vip-only", f"{sim}/v1", "vip-model", "gpt-4o-mini", groups=["vip"]),
        channel_spec(
            "cap-2", f"{sim}/f/delay=1.5/v1", "cap-model", "gpt-4o-mini", priority=5, max_concurrency=2
        ),
        channel_spec("cap-1", f"{sim}/f/delay=1.5/v1", "cap-model", "gpt-4o-mini", max_concurrency=1),
        channel_spec("renamed", f"{sim}/v1", "alias-model", "gpt-4o-mini"),
    ]
    g.apply(
        {"prices": {"*": {"per_call": "0.001"}}, "groups": {"vip": {"multiplier": "1"}}, "channels": channels}
    )
    g.start()
    yield g
    g.stop()


def _channel_names(gw: Gateway) -> dict[int, str]:
    return {int(r["id"]): str(r["name"]) for r in gw.sql("SELECT id, name FROM channels")}


def test_top_tier_only_weighted_within_it(gw: Gateway) -> None:
    key = new_user_key(gw, "weights", 50_000_000)
    rids = []
    for _ in range(80):
        resp = gw.chat(key, "w-model")
        assert resp.status_code == 200, resp.text
        rids.append(resp.headers["x-request-id"])
    names = _channel_names(gw)
    used = Counter(names[int(gw.wait_log(rid)["channel_id"])] for rid in rids)
    assert set(used) == {"w-heavy", "w-light"}  # the lower tier is never chosen while the top is healthy
    # 3:1 weights over 80 draws: 60 vs 20 expected; heavy below light would be a 1e-6 event.
    assert used["w-heavy"] > used["w-light"] >= 5, used


def test_a_group_limited_channel_serves_only_that_group(gw: Gateway) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    plain = new_user_key(gw, "plain", 50_000_000)
    refused = gw.chat(plain, "vip-model")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_available_channel"
    assert gw.wait_log(refused.headers["x-request-id"])["quota"] == 0
    vip = new_user_key(gw, "vipuser", 50_000_000)
    uid = gw.sql("SELECT id FROM users WHERE username = 'vipuser'")[0]["id"]
    moved = httpx.patch(f"{gw.url}/api/admin/users/{uid}", json={"group": "vip"}, headers=admin)
    assert moved.status_code == 200, moved.text
    resp = gw.chat(vip, "vip-model")
    assert resp.status_code == 200, resp.text
    assert _channel_names(gw)[int(gw.wait_log(resp.headers["x-request-id"])["channel_id"])] == "vip-only"


def test_channel_and_key_rename_the_upstream_model(gw: Gateway, simulator: Simulator) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    key = new_user_key(gw, "renames", 50_000_000)
    by_channel = gw.chat(key, "alias-model")
    assert by_channel.status_code == 200 and by_channel.json()["model"].startswith("gpt-4o-mini")

    uid = gw.sql("SELECT id FROM users WHERE username = 'renames'")[0]["id"]
    made = httpx.post(
        f"{gw.url}/api/admin/keys",
        json={"user_id": uid, "model_mapping": {"alias-model": "gpt-4.1"}},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    by_key = gw.chat(made.json()["key"], "alias-model")
    assert by_key.status_code == 200, by_key.text
    # The key's mapping wins over the channel's; the client's own name is what gets logged.
    assert by_key.json()["model"].startswith("gpt-4.1")
    assert gw.wait_log(by_key.headers["x-request-id"])["model"] == "alias-model"


def test_max_concurrency_is_a_hard_cap(gw: Gateway) -> None:
    key = new_user_key(gw, "capped", 50_000_000)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: gw.chat(key, "cap-model"), range(5)))
    ok = [r for r in answers if r.status_code == 200]
    busy = [r for r in answers if r.status_code != 200]
    assert len(ok) == 3, [r.text for r in answers]  # 2 on cap-2, 1 on cap-1, none over
    names = _channel_names(gw)
    used = Counter(names[int(gw.wait_log(r.headers["x-request-id"])["channel_id"])] for r in ok)
    assert used == {"cap-2": 2, "cap-1": 1}
    for r in busy:
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "channels_busy"
        row = gw.wait_log(r.headers["x-request-id"])
        assert row["quota"] == 0 and json.loads(row["attempts"] or "[]") == []
    for r in ok:
        assert charged(wait_settled(gw, r.headers["x-request-id"])) == 500
    # Once they are done, the channels take requests again.
    assert gw.chat(key, "cap-model").status_code == 200
