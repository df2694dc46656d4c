"""Who may call the admin and user APIs, and how refusals look."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.admin.helpers import Api, auth, error_code
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ROUTES = [
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/keys"),
    ("GET", "/api/admin/logs.csv"),
    ("PUT", "/api/admin/prices/gpt-4o"),
    ("DELETE", "/api/admin/channels/1"),
    ("GET", "/api/admin/usage/summary"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_missing_bad_and_user_keys(api: Api, method: str, path: str) -> None:
    missing = api.http.request(method, path, json={})
    assert missing.status_code == 401 and error_code(missing) == "missing_api_key"
    bad = api.http.request(method, path, json={}, headers=auth("sk-not-a-real-key"))
    assert bad.status_code == 401 and error_code(bad) == "invalid_api_key"
    user = api.http.request(method, path, json={}, headers=auth(api.gw.user_key))
    assert user.status_code == 403 and error_code(user) == "admin_required"
    assert user.json()["error"]["type"] == "invalid_request_error"


def test_user_routes_need_a_valid_key(api: Api) -> None:
    assert api.http.get("/api/user/balance").status_code == 401
    assert api.http.get("/api/user/balance", headers=auth("sk-nope")).status_code == 401
    assert api.user(api.gw.user_key, "GET", "/balance").status_code == 200
    assert api.user(api.gw.admin_key, "GET", "/balance").json()["username"] == "admin"


def test_expired_key_is_refused_everywhere(api: Api) -> None:
    user = api.new_user()
    key = api.new_key(user["id"], expires_at=int(time.time() * 1000) + 1000)
    assert api.user(key, "GET", "/balance").status_code == 200
    wait_until(lambda: api.user(key, "GET", "/balance").status_code == 401, timeout=5)
    assert error_code(api.user(key, "GET", "/keys")) == "expired_api_key"
    assert api.chat(key).status_code == 401


def test_errors_have_the_right_status_and_shape(api: Api) -> None:
    unknown = api.admin("GET", "/users/999999")
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    invalid = api.admin("POST", "/users", json={"username": "x y"})
    assert invalid.status_code == 400 and error_code(invalid) is None
    extra = api.admin("POST", "/users", json={"username": "ok", "surprise": 1})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "surprise"
    bad_json = api.http.post(
        "/api/admin/users",
        content=b"{not json",
        headers={**auth(api.gw.admin_key), "content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert api.admin("GET", "/no-such-route").status_code == 404


def test_openapi_documents_the_admin_and_user_apis(api: Api) -> None:
    spec = httpx.get(api.gw.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/admin/users",
        "/api/admin/users/{user_id}/topup",
        "/api/admin/keys/{key_id}",
        "/api/admin/channels/{channel_id}",
        "/api/admin/prices/{model}",
        "/api/admin/redeem-codes",
        "/api/admin/logs.csv",
        "/api/admin/usage/summary",
        "/api/user/redeem",
        "/api/user/keys",
    ):
        assert path in paths, path
    create = paths["/api/admin/keys"]["post"]
    assert create["responses"]["201"] and "403" in create["responses"]
    assert "KeyCreated" in str(create["responses"]["201"])
    assert httpx.get(api.gw.url + "/docs").status_code == 200


def test_the_operator_guide_covers_every_route(api: Api) -> None:
    guide = re.sub(r"\{[a-z_]+\}", "{}", (ROOT / "docs" / "admin-api.md").read_text())
    spec = httpx.get(api.gw.url + "/openapi.json").json()
    for path, methods in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in methods:
            route = f"{method.upper()} {re.sub(r'{[a-z_]+}', '{}', path)}"
            mentioned = re.search(re.escape(route) + r"(?![\w/{.-])", guide)
            assert mentioned, f"docs/admin-api.md does not mention {route}"
