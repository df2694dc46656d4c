"""Users and groups through the admin API, and what the running gateway makes of them."""

from __future__ import annotations

from tests.admin.helpers import Api, error_code, unique


def test_create_get_list_and_filter_users(api: Api) -> None:
    name = unique("Dora")
    user = api.ok("POST", "/users", 201, json={"username": name, "usd": "2.5"})
    assert user["quota"] == 1_250_000 and user["role"] == "user" and user["group"] == "default"
    assert api.ok("GET", f"/users/{user['id']}") == user
    dup = api.admin("POST", "/users", json={"username": name})
    assert dup.status_code == 409 and error_code(dup) == "conflict"
    for bad in (
        {"username": name + "x", "role": "root"},
        {"username": "123"},
        {"username": "a", "quota": -1},
    ):
        assert api.admin("POST", "/users", json=bad).status_code == 400, bad

    found = api.ok("GET", "/users", params={"name": name.lower()})
    assert found["total"] == 1 and found["data"][0]["id"] == user["id"]
    admins = api.ok("GET", "/users", params={"role": "admin"})
    assert [u["username"] for u in admins["data"]] == ["admin"]
    first = api.ok("GET", "/users", params={"per_page": 2, "page": 1})
    second = api.ok("GET", "/users", params={"per_page": 2, "page": 2})
    assert first["total"] == second["total"] >= 3 and first["per_page"] == 2
    assert {u["id"] for u in first["data"]}.isdisjoint(u["id"] for u in second["data"])
    assert api.admin("GET", "/users", params={"per_page": 501}).status_code == 400


def test_update_role_group_and_status(api: Api) -> None:
    user = api.new_user()
    key = api.new_key(user["id"])
    assert api.admin("PATCH", f"/users/{user['id']}", json={"group": "nope"}).status_code == 400
    group = unique("g")
    api.ok("POST", "/groups", 201, json={"name": group, "multiplier": "2", "description": "double"})
    changed = api.ok("PATCH", f"/users/{user['id']}", json={"group": group, "role": "admin"})
    assert (changed["group"], changed["role"]) == (group, "admin")
    # The new role works at once: the key now opens admin routes.
    assert api.http.get("/api/admin/groups", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    api.ok("PATCH", f"/users/{user['id']}", json={"role": "user", "enabled": False})
    assert api.chat(key).status_code == 401
    assert api.user(key, "GET", "/balance").status_code == 401
    api.ok("PATCH", f"/users/{user['id']}", json={"enabled": True})
    assert api.chat(key).status_code == 200
    assert api.admin("PATCH", "/users/999999", json={"enabled": True}).status_code == 404


def test_the_last_admin_cannot_lock_everyone_out(api: Api) -> None:
    admins = api.ok("GET", "/users", params={"role": "admin"})["data"]
    enabled = [u for u in admins if u["enabled"]]
    if len(enabled) == 1:
        refused = api.admin("PATCH", f"/users/{enabled[0]['id']}", json={"enabled": False})
        assert refused.status_code == 409


def test_topup_and_adjust_change_the_live_balance_and_the_ledger(api: Api) -> None:
    user = api.new_user(usd="1")
    key = api.new_key(user["id"])
    assert api.balance(key) == 500_000
    done = api.ok("POST", f"/users/{user['id']}/topup", json={"usd": "0.5", "note": "promo"})
    assert done["user"]["quota"] == 750_000 and done["entry"]["kind"] == "topup"
    assert api.balance(key) == 750_000
    api.ok("POST", f"/users/{user['id']}/adjust", json={"amount": -50_000, "note": "correction"})
    assert api.balance(key) == 700_000
    too_much = api.admin("POST", f"/users/{user['id']}/adjust", json={"amount": -10_000_000})
    assert too_much.status_code == 400 and "negative" in too_much.json()["error"]["message"]
    assert api.admin("POST", f"/users/{user['id']}/topup", json={"amount": -5}).status_code == 400
    assert api.admin("POST", f"/users/{user['id']}/topup", json={"amount": 5, "usd": 1}).status_code == 400
    assert api.admin("POST", "/users/999999/topup", json={"amount": 5}).status_code == 404

    assert api.chat(key).status_code == 200
    ledger = api.ok("GET", f"/users/{user['id']}/ledger", params={"per_page": 500})
    kinds = [e["kind"] for e in ledger["data"]]
    assert kinds[-3:] == ["adjust", "topup", "topup"]  # newest first; the first is the starting quota
    assert ledger["data"][-3]["note"] == "correction"
    # The ledger explains the balance: the sum of its entries (the chat's hold included).
    reloaded = api.ok("GET", f"/users/{user['id']}")
    assert sum(e["amount"] for e in ledger["data"]) == reloaded["quota"] == api.balance(key)


def test_groups_crud_and_delete_refusal(api: Api) -> None:
    name = unique("grp")
    created = api.ok("POST", "/groups", 201, json={"name": name, "multiplier": 1.25})
    assert created == {"name": name, "multiplier": "1.25", "description": "", "users": 0}
    assert api.admin("POST", "/groups", json={"name": name}).status_code == 409
    assert api.admin("PUT", f"/groups/{name}", json={"multiplier": -1}).status_code == 400
    updated = api.ok("PUT", f"/groups/{name}", json={"multiplier": "0.5", "description": "half"})
    assert (updated["multiplier"], updated["description"]) == ("0.5", "half")
    fresh = api.admin("PUT", f"/groups/{unique('grp')}", json={"multiplier": 3})
    assert fresh.status_code == 201
    user = api.new_user(group=name)
    listed = {g["name"]: g for g in api.ok("GET", "/groups")["data"]}
    assert listed[name]["users"] == 1
    busy = api.admin("DELETE", f"/groups/{name}")
    assert busy.status_code == 409 and "still has 1 user" in busy.json()["error"]["message"]
    api.ok("PATCH", f"/users/{user['id']}", json={"group": "default"})
    assert api.ok("DELETE", f"/groups/{name}") == {"id": name, "deleted": True}
    assert api.admin("DELETE", f"/groups/{name}").status_code == 404
