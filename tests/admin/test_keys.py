"""Keys through the admin and user APIs: they work, stop and obey their limits at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.admin.helpers import Api, error_code


def test_created_key_works_at_once_and_revoking_stops_it(api: Api) -> None:
    user = api.new_user()
    created = api.ok("POST", "/keys", 201, json={"user_id": user["id"], "name": "laptop"})
    key = created["key"]
    assert key.startswith("sk-") and created["key_hint"] == f"{key[:7]}…{key[-4:]}"
    assert created["quota"] is None and created["allowed_models"] is None and created["enabled"]
    assert api.chat(key).status_code == 200

    listed = api.admin("GET", "/keys", params={"user_id": user["id"]})
    assert key not in listed.text
    assert [k["name"] for k in listed.json()["data"]] == ["laptop"] and listed.json()["total"] == 1
    assert api.ok("GET", f"/keys/{created['id']}")["username"] == user["username"]

    revoked = api.ok("DELETE", f"/keys/{created['id']}")
    assert revoked["revoked_at"] and not revoked["enabled"]
    refused = api.chat(key)
    assert refused.status_code == 401 and error_code(refused) == "invalid_api_key"
    again = api.admin("PATCH", f"/keys/{created['id']}", json={"enabled": True})
    assert again.status_code == 409
    assert api.admin("DELETE", "/keys/999999").status_code == 404
    assert api.admin("POST", "/keys", json={"user_id": 999999}).status_code == 404


def test_limits_apply_at_once_and_can_be_lifted(api: Api) -> None:
    user = api.new_user()
    created = api.ok(
        "POST",
        "/keys",
        201,
        json={
            "user_id": user["id"],
            "allowed_models": ["gpt-4o-mini"],
            "allowed_ips": ["127.0.0.0/8"],
            "expires_at": "+30d",
            "rpm": 1000,
            "tpm": 1_000_000,
            "quota": 1_000_000,
        },
    )
    key, key_id = created["key"], created["id"]
    assert created["allowed_ips"] == ["127.0.0.0/8"] and created["quota"] == 1_000_000
    assert created["expires_at"] > (time.time() + 29 * 86400) * 1000
    assert api.chat(key).status_code == 200
    other = api.chat(key, model="gpt-4o")
    assert other.status_code == 403 and error_code(other) == "model_not_allowed"

    api.ok("PATCH", f"/keys/{key_id}", json={"allowed_ips": ["10.0.0.0/8"]})
    blocked = api.chat(key)
    assert blocked.status_code == 403 and error_code(blocked) == "ip_not_allowed"

    lifted = api.ok("PATCH", f"/keys/{key_id}", json={"allowed_ips": None, "allowed_models": None})
    assert lifted["allowed_ips"] is None and lifted["allowed_models"] is None and lifted["rpm"] == 1000
    assert api.chat(key, model="gpt-4o").status_code == 200

    api.ok("PATCH", f"/keys/{key_id}", json={"enabled": False, "name": "paused"})
    assert api.chat(key).status_code == 401
    api.ok("PATCH", f"/keys/{key_id}", json={"enabled": True})
    assert api.chat(key).status_code == 200

    api.ok("PATCH", f"/keys/{key_id}", json={"quota": 0})
    spent = api.chat(key)
    assert spent.status_code == 402 and error_code(spent) == "insufficient_quota"


def test_rpm_limit(api: Api) -> None:
    user = api.new_user()
    key = api.new_key(user["id"], rpm=1)
    assert api.chat(key).status_code == 200
    limited = api.chat(key)
    assert limited.status_code == 429 and error_code(limited) == "rate_limit_exceeded"


def test_invalid_limits_are_refused(api: Api) -> None:
    user = api.new_user()
    for bad in (
        {"allowed_ips": ["300.1.1.1"]},
        {"expires_at": "yesterday"},
        {"expires_at": 1000},
        {"rpm": -1},
        {"quota": -5},
        {"name": "x" * 129},
        {"unknown": 1},
    ):
        resp = api.admin("POST", "/keys", json={"user_id": user["id"], **bad})
        assert resp.status_code == 400, (bad, resp.text)
    assert api.ok("GET", "/keys", params={"user_id": user["id"]})["total"] == 0


def test_users_manage_only_their_own_keys(api: Api) -> None:
    alice, bob = api.new_user(), api.new_user()
    alice_key, bob_key = api.new_key(alice["id"]), api.new_key(bob["id"])
    made = api.user(alice_key, "POST", "/keys", json={"name": "ci", "allowed_models": ["gpt-4o-mini"]})
    assert made.status_code == 201 and made.json()["user_id"] == alice["id"]
    new_key = made.json()["key"]
    assert api.chat(new_key).status_code == 200
    assert api.chat(new_key, model="gpt-4o").status_code == 403
    # Renaming models is for operators only.
    assert api.user(alice_key, "POST", "/keys", json={"model_mapping": {"a": "b"}}).status_code == 400

    mine = api.user(alice_key, "GET", "/keys").json()
    assert mine["total"] == 2 and {k["user_id"] for k in mine["data"]} == {alice["id"]}
    assert new_key not in str(mine)
    bobs = api.user(bob_key, "GET", "/keys").json()["data"]
    stolen = api.user(alice_key, "DELETE", f"/keys/{bobs[0]['id']}")
    assert stolen.status_code == 404
    assert api.chat(bob_key).status_code == 200

    assert api.user(alice_key, "DELETE", f"/keys/{made.json()['id']}").status_code == 200
    assert api.chat(new_key).status_code == 401
    assert api.chat(alice_key).status_code == 200


@pytest.mark.parametrize(
    "limits",
    [
        {"allowed_models": ["gpt-4o-mini"], "quota": 50_000, "expires_at": "+1d"},
        {"quota": 1_000_000},
        {"expires_at": "+30d"},
        {"allowed_models": ["gpt-4o-mini"]},
        {"allowed_ips": ["127.0.0.0/8"]},
        {"rpm": 1000},
        {"tpm": 1_000_000},
        {"model_mapping": {"gpt-4o-mini": "gpt-4o-mini"}},
    ],
)
def test_a_key_with_limits_cannot_manage_keys(api: Api, limits: dict[str, Any]) -> None:
    """It could otherwise mint a key without its limits, or revoke its owner's other keys."""
    user = api.new_user()
    sibling = api.ok("POST", "/keys", 201, json={"user_id": user["id"], "name": "main"})
    limited = api.new_key(user["id"], **limits)
    assert api.chat(limited).status_code == 200  # a working key, for what it is allowed

    for method, path, body in [
        ("POST", "/keys", {"name": "escape"}),
        ("POST", "/keys", dict(limits, name="same limits")),
        ("GET", "/keys", None),
        ("DELETE", f"/keys/{sibling['id']}", None),
    ]:
        resp = api.user(limited, method, path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert error_code(resp) == "key_has_limits"
    keys = api.ok("GET", "/keys", params={"user_id": user["id"]})["data"]
    assert [k["name"] for k in keys] == ["main", ""]  # nothing made
    assert api.chat(sibling["key"]).status_code == 200  # nothing revoked


def test_a_key_without_limits_manages_its_owners_keys(api: Api) -> None:
    user = api.new_user()
    full = api.new_key(user["id"])
    made = api.user(full, "POST", "/keys", json={"name": "app", "quota": 50_000, "rpm": 60})
    assert made.status_code == 201, made.text
    assert (made.json()["quota"], made.json()["rpm"]) == (50_000, 60)
    unlimited = api.user(full, "POST", "/keys", json={"name": "second"})
    assert unlimited.status_code == 201 and unlimited.json()["quota"] is None
    assert api.user(full, "GET", "/keys").json()["total"] == 3
    # The made key has limits: it may not manage keys, not even revoke itself.
    app_key = made.json()["key"]
    assert api.user(app_key, "DELETE", f"/keys/{made.json()['id']}").status_code == 403
    assert api.user(full, "DELETE", f"/keys/{made.json()['id']}").status_code == 200
    assert api.chat(app_key).status_code == 401
    # A second unlimited key can in turn revoke the first.
    first_id = api.user(full, "GET", "/keys").json()["data"][0]["id"]
    assert api.user(unlimited.json()["key"], "DELETE", f"/keys/{first_id}").status_code == 200
    assert api.chat(full).status_code == 401
