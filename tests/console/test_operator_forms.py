"""The console's forms do what the admin and user APIs do, exactly: users and balances (the
ledger to the unit), channels that carry traffic, prices, groups, keys, redeem codes, tasks,
run-time settings that apply at once; and the new API routes those pages read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.console.kit import Visitor, admin_api, flash_of, new_user, unique
from tests.support.processes import SIM_KEY, Gateway, Simulator, wait_until

UNITS = 500_000  # per USD, the default


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def admin(gw: Gateway) -> Iterator[Visitor]:
    with Visitor(gw) as v:
        yield v.sign_in(gw.admin_key)


def test_user_created_topped_up_and_adjusted_to_the_unit(gw: Gateway, admin: Visitor) -> None:
    name = unique("u")
    resp = admin.post("/admin/users", {"username": name, "role": "user", "group": "default", "usd": "5"})
    assert resp.status_code == 303
    user_id = int(resp.headers["location"].rsplit("/", 1)[1])
    assert (
        admin.post(
            f"/admin/users/{user_id}/balance", {"kind": "topup", "usd": "2.5", "note": "invoice 7"}
        ).status_code
        == 303
    )
    assert admin.flash() == ("ok", f"Topup of 1,250,000 units written; {name} now has 3,750,000 units.")
    assert (
        admin.post(f"/admin/users/{user_id}/balance", {"kind": "adjust", "usd": "-1.000002"}).status_code
        == 303
    )
    user = admin_api(gw, "GET", f"/users/{user_id}")
    assert user["quota"] == 5 * UNITS + 1_250_000 - 500_000 - 1 == 3_249_999
    ledger = admin_api(gw, "GET", f"/users/{user_id}/ledger")["data"]
    assert [(e["kind"], e["amount"], e["note"]) for e in ledger] == [
        ("adjust", -500_001, ""),
        ("topup", 1_250_000, "invoice 7"),
        ("topup", 2_500_000, "initial quota"),
    ]
    assert sum(e["amount"] for e in ledger) == user["quota"]
    # refused changes write nothing: a negative top-up, a balance below zero, garbage
    for form in (
        {"kind": "topup", "usd": "-1"},
        {"kind": "adjust", "usd": "-100"},
        {"kind": "topup", "usd": "lots"},
    ):
        assert admin.post(f"/admin/users/{user_id}/balance", form).status_code == 303
        kind, _ = admin.flash() or ("", "")
        assert kind == "error", form
    assert admin_api(gw, "GET", f"/users/{user_id}")["quota"] == 3_249_999
    page = admin.get(f"/admin/users/{user_id}")
    assert "$6.50" in page.text and "invoice 7" in page.text
    # role, group, status
    admin.post("/admin/groups", {"name": "vip-" + name, "multiplier": "0.8"})
    admin.post(f"/admin/users/{user_id}", {"role": "user", "group": "vip-" + name})  # enabled unticked
    user = admin_api(gw, "GET", f"/users/{user_id}")
    assert (user["group"], user["enabled"]) == ("vip-" + name, False)


def test_channel_added_in_the_console_carries_traffic(
    gw: Gateway, admin: Visitor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sim = Simulator(tmp_path_factory.mktemp("console-sim")).start()
    try:
        model = unique("console-model")
        resp = admin.post(
            "/admin/channels",
            {
                "name": unique("ch"),
                "type": "openai",
                "base_url": sim.url + "/v1",
                "key": SIM_KEY,
                "models": model,
                "model_mapping": f"{model}=gpt-4o-mini",
                "priority": "5",
                "weight": "2",
                "enabled": "1",
                "config": '{"max_concurrency": 4}',
            },
        )
        assert resp.status_code == 303, flash_of(admin.get("/me/redeem"))
        channel_id = int(resp.headers["location"].rsplit("/", 1)[1])
        channel = admin_api(gw, "GET", f"/channels/{channel_id}")
        assert channel["model_mapping"] == {model: "gpt-4o-mini"} and channel["config"] == {
            "max_concurrency": 4
        }
        assert (
            channel["key_hint"] != SIM_KEY and SIM_KEY not in admin.get(f"/admin/channels/{channel_id}").text
        )
        assert (
            admin.post(
                "/admin/prices", {"model": model, "input_per_1m": "1", "output_per_1m": "2"}
            ).status_code
            == 303
        )
        _, key = new_user(gw)
        reply = gw.chat(key, model)
        assert reply.status_code == 200, reply.text
        log = gw.wait_log(reply.headers["x-request-id"])
        assert log["channel_id"] == channel_id and log["upstream_model"] == "gpt-4o-mini"
        # test now, disable, enable, edit
        assert admin.post(f"/admin/channels/{channel_id}/probe").status_code == 303
        assert admin.flash()[0] == "ok"  # type: ignore[index]
        admin.post(f"/admin/channels/{channel_id}/disable", {"reason": "maintenance"})
        assert admin_api(gw, "GET", f"/channels/{channel_id}")["disabled_reason"] == "maintenance"
        assert gw.chat(key, model).status_code == 503
        admin.post(f"/admin/channels/{channel_id}/enable")
        assert gw.chat(key, model).status_code == 200
        form = {
            "name": channel["name"],
            "base_url": sim.url + "/v1",
            "models": model,
            "model_mapping": "",
            "priority": "1",
            "weight": "3",
            "config": "",
        }
        assert admin.post(f"/admin/channels/{channel_id}", form).status_code == 303
        channel = admin_api(gw, "GET", f"/channels/{channel_id}")
        assert (channel["priority"], channel["weight"], channel["model_mapping"]) == (1, 3, {})
        assert channel["key_hint"].endswith(SIM_KEY[-4:])  # a blank key field keeps the key
        bad = admin.post(f"/admin/channels/{channel_id}", {**form, "config": "[1, 2"})
        assert bad.status_code == 303 and admin.flash() == ("error", "config is not valid JSON.")
        assert admin.post(f"/admin/channels/{channel_id}/delete").status_code == 303
        assert (
            httpx.get(gw.url + f"/api/admin/channels/{channel_id}", headers=auth(gw.admin_key)).status_code
            == 404
        )
    finally:
        sim.stop()


def test_prices_show_the_shipped_defaults_and_the_operators(gw: Gateway, admin: Visitor) -> None:
    page = admin.get("/admin/prices", params={"q": "gpt-4o-mini"})
    assert ">default<" in page.text and "gpt-4o-mini" in page.text
    model = unique("priced")
    admin.post(
        "/admin/prices",
        {"model": model, "input_per_1m": "0.5", "per_call": "0.01", "image_prices": "1024x1024=0.04"},
    )
    price = admin_api(gw, "GET", f"/prices/{model}")
    assert (price["source"], price["input_per_1m"], price["per_call"], price["image_prices"]) == (
        "operator",
        "0.5",
        "0.01",
        {"1024x1024": "0.04"},
    )
    admin.post("/admin/prices/delete", {"model": model})
    assert httpx.get(gw.url + f"/api/admin/prices/{model}", headers=auth(gw.admin_key)).status_code == 404


def test_keys_made_paused_and_revoked_by_the_operator(gw: Gateway, admin: Visitor) -> None:
    user, _ = new_user(gw)
    resp = admin.post(
        "/admin/keys",
        {
            "user_id": str(user["id"]),
            "name": "ops",
            "quota_usd": "0.5",
            "allowed_models": "gpt-4o-mini",
            "expires_at": "+1d",
        },
    )
    key = re.search(r'value="(sk-[A-Za-z0-9]{48})"', resp.text)
    assert resp.status_code == 200 and key is not None
    made = next(k for k in admin_api(gw, "GET", f"/keys?user_id={user['id']}")["data"] if k["name"] == "ops")
    assert (made["name"], made["quota"], made["allowed_models"]) == ("ops", 250_000, ["gpt-4o-mini"])
    assert gw.chat(key.group(1)).status_code == 200
    admin.post(f"/admin/keys/{made['id']}/disable")
    assert gw.chat(key.group(1)).status_code == 401
    admin.post(f"/admin/keys/{made['id']}/enable")
    assert gw.chat(key.group(1)).status_code == 200
    admin.post(f"/admin/keys/{made['id']}/revoke")
    assert gw.chat(key.group(1)).status_code == 401
    assert admin.post("/admin/keys", {"user_id": "999999"}).status_code == 404


def test_redeem_codes_made_by_the_operator_and_redeemed_by_a_user(gw: Gateway, admin: Visitor) -> None:
    resp = admin.post("/admin/redeem", {"count": "2", "usd": "1.25", "name": "launch"})
    codes = re.findall(r"rc-[A-Za-z0-9]{20,}", resp.text)
    assert resp.status_code == 200 and len(set(codes)) == 2
    user, key = new_user(gw, usd="0")
    with Visitor(gw) as v:
        v.sign_in(key)
        assert v.post("/me/redeem", {"code": codes[0]}).status_code == 303
        assert v.flash() == ("ok", "Added $1.250000; your balance is $1.250000.")
        v.post("/me/redeem", {"code": codes[0]})
        assert (v.flash() or ("", ""))[0] == "error"  # a code works once
        assert v.get("/me/ledger").text.count("redeem") >= 1
    assert admin_api(gw, "GET", f"/users/{user['id']}")["quota"] == 625_000
    listing = admin.get("/admin/redeem", params={"status": "used"}).text
    assert user["username"] in listing


def test_run_time_settings_apply_at_once_and_reset(gw: Gateway, admin: Visitor) -> None:
    body = {"name": "x" * 3000}
    assert httpx.post(gw.url + "/api/admin/groups", json=body, headers=auth(gw.admin_key)).status_code == 400
    assert admin.post("/admin/settings", {"s-api_max_body_bytes": "2048"}).status_code == 303
    assert admin.flash() == ("ok", "Saved: api_max_body_bytes.")
    assert httpx.post(gw.url + "/api/admin/groups", json=body, headers=auth(gw.admin_key)).status_code == 413
    listing = admin_api(gw, "GET", "/settings")["data"]
    row = next(s for s in listing if s["name"] == "api_max_body_bytes")
    assert (row["value"], row["default"], row["overridden"]) == (2048, 1024 * 1024, True)
    # out of bounds, unknown, wrong type: refused, nothing stored
    assert admin.post("/admin/settings", {"s-api_max_body_bytes": "10"}).status_code == 303
    assert admin.flash()[0] == "error"  # type: ignore[index]
    for bad in (
        {"workers": 4},
        {"retries": "many"},
        {"task_notify_hook": "ftp://x"},
        {"image_chat_models": ["x" * 200]},
    ):
        resp = httpx.patch(gw.url + "/api/admin/settings", json=bad, headers=auth(gw.admin_key))
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_setting", bad
    assert admin.post("/admin/settings", {"reset": "api_max_body_bytes"}).status_code == 303
    assert httpx.post(gw.url + "/api/admin/groups", json=body, headers=auth(gw.admin_key)).status_code == 400
    _, key = new_user(gw)
    assert httpx.get(gw.url + "/api/admin/settings", headers=auth(key)).status_code == 403
    assert (
        httpx.patch(gw.url + "/api/admin/settings", json={"retries": 0}, headers=auth(key)).status_code == 403
    )


def test_operator_cancels_a_task_and_it_is_refunded(gw: Gateway, admin: Visitor) -> None:
    user, key = new_user(gw)
    submit = httpx.post(
        gw.url + "/mj/submit/imagine",
        json={"prompt": "a slow cat --sim-stuck"},
        headers=auth(key),
        timeout=30,
    )
    task_id = submit.json()["result"]
    wait_until(lambda: admin_api(gw, "GET", f"/tasks/{task_id}")["status"] == "running")
    page = admin.get("/admin/tasks", params={"status": "open", "user_id": str(user["id"])})
    assert task_id in page.text and 'hx-trigger="every 3s"' in page.text
    assert admin.post(f"/admin/tasks/{task_id}/cancel").status_code == 303
    assert admin.flash() == ("ok", "Task cancelled and refunded.")
    wait_until(lambda: admin_api(gw, "GET", f"/users/{user['id']}")["quota"] == 10 * UNITS, 10)
    assert admin.post("/admin/tasks/nope/cancel").status_code == 404


def test_dashboards_add_up_and_refuse_bad_callers(gw: Gateway) -> None:
    user, key = new_user(gw)
    for _ in range(3):
        assert gw.chat(key).status_code == 200
    time.sleep(0.3)  # the usage rows are written in batches
    mine = httpx.get(gw.url + "/api/user/usage/dashboard", headers=auth(key)).json()
    summary = httpx.get(gw.url + "/api/user/usage/summary", headers=auth(key)).json()
    assert sum(p["requests"] for p in mine["series"]) == summary["total"]["requests"] == 3
    assert sum(p["quota"] for p in mine["series"]) == summary["total"]["quota"] > 0
    assert mine["by_channel"] == [] and mine["by_user"] == [] and mine["bucket_ms"] == 3_600_000 * 24
    ops = admin_api(gw, "GET", f"/usage/dashboard?user_id={user['id']}&bucket=hour")
    assert ops["bucket_ms"] == 3_600_000 and [u["label"] for u in ops["by_user"]] == [user["username"]]
    assert sum(p["requests"] for p in ops["series"]) == 3
    assert httpx.get(gw.url + "/api/admin/usage/dashboard", headers=auth(key)).status_code == 403
    assert httpx.get(gw.url + "/api/user/usage/dashboard").status_code == 401
    assert httpx.get(gw.url + "/api/user/usage/dashboard?bucket=week", headers=auth(key)).status_code == 400
    assert httpx.get(gw.url + "/api/user/usage/dashboard?top=100000", headers=auth(key)).status_code == 400
    # the user's ledger: their own entries, adding up to their balance
    ledger = httpx.get(gw.url + "/api/user/ledger", headers=auth(key)).json()
    balance = httpx.get(gw.url + "/api/user/balance", headers=auth(key)).json()
    assert ledger["total"] >= 4 and all(
        e["token_id"] in (None, ledger["data"][0]["token_id"]) for e in ledger["data"]
    )
    assert sum(e["amount"] for e in ledger["data"]) == balance["quota"]
