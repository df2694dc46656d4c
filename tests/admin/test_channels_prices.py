"""Channels and prices through the admin API, and their effect on routing and charging."""

from __future__ import annotations

import math
from decimal import Decimal

from tests.admin.helpers import Api, error_code, unique
from tests.support.processes import SIM_KEY, SIM_KEY_2, Simulator

SECRET = SIM_KEY  # the test simulator's key: ends in abcd


def test_channel_lifecycle_drives_routing(api: Api, simulator: Simulator) -> None:
    name, model = unique("ext"), unique("ext-model")
    listed = api.ok("GET", "/channels")["data"]
    assert listed[0]["name"] == "simulator" and listed[0]["key_hint"].startswith("sk-…")
    body = {
        "name": name,
        "base_url": simulator.url + "/v1",
        "key": SECRET,
        "models": [model],
        "model_mapping": {model: "gpt-4o"},
        "priority": 5,
    }
    created = api.ok("POST", "/channels", 201, json=body)
    assert created["key_hint"] == "sk-…abcd" and created["model_mapping"] == {model: "gpt-4o"}
    assert SECRET not in api.admin("GET", "/channels").text
    assert api.admin("POST", "/channels", json=body).status_code == 409
    assert api.admin("POST", "/channels", json={**body, "name": "x", "type": "bogus"}).status_code == 400
    assert api.admin("POST", "/channels", json={**body, "name": "y", "models": []}).status_code == 400

    api.ok("PUT", f"/prices/{model}", json={"input_per_1m": "1", "output_per_1m": "2"})
    reply = api.chat(api.gw.user_key, model=model)
    assert reply.status_code == 200 and reply.json()["model"] == "gpt-4o"

    rotated = api.ok("PATCH", f"/channels/{created['id']}", json={"key": SIM_KEY_2})
    assert rotated["key_hint"] == "sk-…wxyz" and rotated["priority"] == 5
    assert api.chat(api.gw.user_key, model=model).status_code == 200

    disabled = api.ok("POST", f"/channels/{created['id']}/disable", json={"reason": "maintenance"})
    assert not disabled["enabled"] and disabled["disabled_reason"] == "maintenance"
    down = api.chat(api.gw.user_key, model=model)
    assert down.status_code == 503 and error_code(down) == "no_available_channel"
    assert api.ok("POST", f"/channels/{created['id']}/enable")["enabled"]
    assert api.chat(api.gw.user_key, model=model).status_code == 200

    extra = unique("more")
    api.ok(
        "PATCH",
        f"/channels/{created['id']}",
        json={
            "models": [model, extra],
            "model_mapping": {model: "gpt-4o", extra: "gpt-4o-mini"},
            "weight": 3,
        },
    )
    api.ok("PUT", f"/prices/{extra}", json={"per_call": "0.001"})
    assert api.chat(api.gw.user_key, model=extra).status_code == 200
    assert api.admin("PATCH", f"/channels/{created['id']}", json={"weight": -1}).status_code == 400
    assert api.admin("PATCH", f"/channels/{created['id']}", json={"name": "simulator"}).status_code == 409

    assert api.ok("DELETE", f"/channels/{created['id']}") == {"id": created["id"], "deleted": True}
    gone = api.chat(api.gw.user_key, model=model)
    assert gone.status_code == 404 and error_code(gone) == "model_not_found"
    assert api.admin("GET", f"/channels/{created['id']}").status_code == 404
    for model_name in (model, extra):
        api.ok("DELETE", f"/prices/{model_name}")


def test_prices_are_listed_set_and_deleted(api: Api) -> None:
    prices = {p["model"]: p for p in api.ok("GET", "/prices")["data"]}
    assert prices["gpt-4o-mini"]["source"] == "default" and prices["gpt-4o-mini"]["input_per_1m"] == "0.15"
    set_ = api.ok(
        "PUT", "/prices/vendor/model-x", json={"input_per_1m": 3, "image_prices": {"1024x1024": 0.5}}
    )
    assert set_["model"] == "vendor/model-x" and set_["source"] == "operator"
    assert set_["input_per_1m"] == "3" and set_["image_prices"] == {"1024x1024": "0.5"}
    assert api.ok("GET", "/prices/vendor/model-x") == set_
    assert api.admin("PUT", "/prices/vendor/model-x", json={"input_per_1m": -1}).status_code == 400
    assert api.ok("DELETE", "/prices/vendor/model-x")["deleted"]
    assert api.admin("DELETE", "/prices/vendor/model-x").status_code == 404
    assert api.admin("DELETE", "/prices/gpt-4o-mini").status_code == 404  # a default is not deletable
    assert api.admin("GET", "/prices/vendor/model-x").status_code == 404


def _charged(api: Api, key: str, model: str) -> tuple[int, int, int]:
    """What one request cost (units), and its prompt and completion tokens, from its log row."""
    resp = api.chat(key, model=model)
    assert resp.status_code == 200, resp.text
    row = api.gw.wait_log(resp.headers["x-request-id"])
    return row["quota"], row["prompt_tokens"], row["completion_tokens"]


def _units(usd: Decimal) -> int:
    return math.ceil(usd * 500_000)


def test_setting_a_price_changes_what_a_request_costs(api: Api) -> None:
    model = "gpt-4.1-mini"  # shipped price: $0.40 in, $1.60 out per 1M tokens
    group = unique("g")
    api.ok("POST", "/groups", 201, json={"name": group, "multiplier": "2"})
    user = api.new_user(usd="100")
    doubled = api.new_user(usd="100", group=group)
    key, doubled_key = api.new_key(user["id"]), api.new_key(doubled["id"])
    cost, p, c = _charged(api, key, model)
    assert cost == _units((p * Decimal("0.40") + c * Decimal("1.60")) / 1_000_000)

    api.ok("PUT", f"/prices/{model}", json={"input_per_1m": "100", "output_per_1m": "300"})
    try:
        cost, p, c = _charged(api, key, model)
        assert cost == _units(Decimal(p * 100 + c * 300) / 1_000_000)
        cost, p, c = _charged(api, doubled_key, model)
        assert cost == _units(Decimal(p * 100 + c * 300) * 2 / 1_000_000)
        listed = {row["model"]: row for row in api.ok("GET", "/prices")["data"]}
        assert listed[model]["source"] == "operator"
    finally:
        api.ok("DELETE", f"/prices/{model}")
    cost, p, c = _charged(api, key, model)
    assert cost == _units((p * Decimal("0.40") + c * Decimal("1.60")) / 1_000_000)
