"""Numbers out of range in the admin and user APIs are refused with 400 in OpenAI's error shape:
never a 500, never a balance that overflows (SQLite turns an overflowing sum into a float)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.helpers import Api, auth, error_code, unique
from tests.support.pg import fresh_database
from tests.support.processes import Gateway

INT64_MAX = 2**63 - 1
MAX_UNITS = 2**53 - 1  # the documented largest amount of quota units
HUGE = 10**30


@pytest.fixture(scope="module")
def target(api: Api) -> dict[str, Any]:
    user = api.new_user(usd="1")
    key = api.ok("POST", "/keys", 201, json={"user_id": user["id"]})
    return {"user": user, "uid": user["id"], "kid": key["id"], "key": key["key"]}


def _ledger_sum(api: Api, uid: int) -> int:
    entries = api.ok("GET", f"/users/{uid}/ledger", params={"per_page": 500})["data"]
    return sum(int(e["amount"]) for e in entries)


ADMIN_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/users/{uid}/topup", {"json": {"amount": INT64_MAX}}),
    ("POST", "/users/{uid}/topup", {"json": {"amount": MAX_UNITS + 1}}),
    ("POST", "/users/{uid}/topup", {"json": {"usd": "1e30"}}),
    ("POST", "/users/{uid}/topup", {"json": {"usd": "9e999999999"}}),
    ("POST", "/users/{uid}/adjust", {"json": {"amount": -(2**63)}}),
    ("POST", "/users", {"json": {"username": "big-quota", "quota": 2**63}}),
    ("POST", "/users", {"json": {"username": "big-usd", "usd": "1e30"}}),
    ("GET", "/users", {"params": {"page": HUGE}}),
    ("GET", f"/users/{HUGE}", {}),
    ("GET", f"/users/{2**40}", {}),
    ("GET", "/users/{uid}/ledger", {"params": {"page": HUGE}}),
    ("POST", "/keys", {"json": {"user_id": "{uid}", "quota": 2**63}}),
    ("POST", "/keys", {"json": {"user_id": "{uid}", "rpm": 2**31}}),
    ("POST", "/keys", {"json": {"user_id": "{uid}", "tpm": 2**63}}),
    ("POST", "/keys", {"json": {"user_id": "{uid}", "expires_at": HUGE}}),
    ("POST", "/keys", {"json": {"user_id": "{uid}", "expires_at": "+99999999999999d"}}),
    ("POST", "/keys", {"json": {"user_id": HUGE}}),
    ("PATCH", "/keys/{kid}", {"json": {"quota": 2**63}}),
    ("GET", "/keys", {"params": {"user_id": HUGE}}),
    ("GET", "/logs", {"params": {"token_id": HUGE}}),
    ("GET", "/logs", {"params": {"since": str(HUGE)}}),
    ("GET", "/logs", {"params": {"page": HUGE}}),
    ("GET", "/logs.csv", {"params": {"channel_id": HUGE}}),
    ("GET", "/usage/summary", {"params": {"until": "+99999999999999d"}}),
    ("POST", "/redeem-codes", {"json": {"quota": 2**63}}),
    ("POST", "/redeem-codes", {"json": {"quota": 1, "expires_at": HUGE}}),
    (
        "POST",
        "/channels",
        {"json": {"name": "big", "base_url": "http://x/v1", "models": ["m"], "priority": 2**63}},
    ),
    (
        "POST",
        "/channels",
        {"json": {"name": "big", "base_url": "http://x/v1", "models": ["m"], "weight": 2**31}},
    ),
    ("GET", f"/channels/{HUGE}", {}),
    ("POST", f"/channels/{HUGE}/probe", {}),
    ("PUT", "/prices/bounds-model", {"json": {"per_call": "1e30"}}),
    ("PUT", "/prices/bounds-model", {"json": {"image_prices": {"1024x1024": "-1"}}}),
    ("PUT", "/groups/bounds-group", {"json": {"multiplier": "1e30"}}),
    ("DELETE", f"/redeem-codes/{HUGE}", {}),
]


def _fill(value: Any, target: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return int(target["uid"]) if value == "{uid}" else value.format(**target)
    if isinstance(value, dict):
        return {k: _fill(v, target) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "kwargs"), ADMIN_CASES)
def test_admin_api_refuses_out_of_range_numbers(
    api: Api, target: dict[str, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    resp = api.admin(method, path.format(**target), **_fill(kwargs, target))
    assert resp.status_code == 400, resp.text
    error_code(resp)  # OpenAI's error shape
    uid = target["uid"]
    user = api.ok("GET", f"/users/{uid}")
    assert user["quota"] == target["user"]["quota"] == _ledger_sum(api, uid)


USER_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/keys", {"json": {"quota": 2**64}}),
    ("POST", "/keys", {"json": {"rpm": 2**40}}),
    ("GET", "/keys", {"params": {"page": HUGE}}),
    ("DELETE", f"/keys/{HUGE}", {}),
    ("GET", "/logs", {"params": {"page": HUGE}}),
    ("GET", "/logs", {"params": {"token_id": HUGE}}),
    ("GET", "/usage/summary", {"params": {"since": str(HUGE)}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), USER_CASES)
def test_user_api_refuses_out_of_range_numbers(
    api: Api, target: dict[str, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    resp = api.user(target["key"], method, path, **kwargs)
    assert resp.status_code == 400, resp.text
    error_code(resp)


def test_the_balance_stops_at_the_largest_amount(api: Api) -> None:
    user = api.new_user(usd="0")
    uid = user["id"]
    api.ok("POST", f"/users/{uid}/topup", json={"amount": MAX_UNITS})
    more = api.admin("POST", f"/users/{uid}/topup", json={"amount": 1})
    assert more.status_code == 400 and error_code(more) == "amount_too_large"
    assert api.ok("GET", f"/users/{uid}")["quota"] == MAX_UNITS == _ledger_sum(api, uid)
    assert (
        api.admin("POST", "/users", json={"username": unique("max"), "quota": MAX_UNITS}).status_code == 201
    )
    key = api.ok("POST", "/keys", 201, json={"user_id": uid, "quota": MAX_UNITS, "rpm": 2**31 - 1})
    assert key["quota"] == MAX_UNITS


async def test_huge_topup_on_postgres(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with fresh_database() as url:
        gw = Gateway(tmp_path_factory.mktemp("bounds-pg"), AITRE_DATABASE_URL=url).start()
        try:
            async with httpx.AsyncClient(
                base_url=gw.url + "/api/admin", headers=auth(gw.admin_key), timeout=30
            ) as http:
                before = (await http.get("/users/2")).json()["quota"]
                resp = await http.post("/users/2/topup", json={"amount": INT64_MAX})
                assert resp.status_code == 400, resp.text
                assert (await http.get("/users/2")).json()["quota"] == before
        finally:
            gw.stop()
