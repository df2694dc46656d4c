"""Redeem codes: created in batches by admins, each used once by a user."""

from __future__ import annotations

import time

from tests.admin.helpers import Api, error_code, unique
from tests.support.processes import wait_until


def test_redeem_once_twice_unknown_and_expired(api: Api) -> None:
    soon = int(time.time() * 1000) + 1500
    expiring = api.ok("POST", "/redeem-codes", 201, json={"quota": 1000, "expires_at": soon})["data"][0]
    name = unique("batch")
    batch = api.ok("POST", "/redeem-codes", 201, json={"count": 3, "usd": "2", "name": name})["data"]
    assert len(batch) == 3 and len({c["code"] for c in batch}) == 3
    assert all(c["quota"] == 1_000_000 and c["code"].startswith("rc-") for c in batch)

    user = api.new_user(usd="1")
    key = api.new_key(user["id"])
    done = api.user(key, "POST", "/redeem", json={"code": batch[0]["code"]})
    assert done.status_code == 200, done.text
    assert done.json()["added"] == 1_000_000 and done.json()["added_usd"] == "2.000000"
    assert done.json()["balance"]["quota"] == 1_500_000 == api.balance(key)

    twice = api.user(key, "POST", "/redeem", json={"code": batch[0]["code"]})
    assert twice.status_code == 400 and error_code(twice) == "redeem_code_used"
    other = api.new_key(api.new_user()["id"])
    assert (
        error_code(api.user(other, "POST", "/redeem", json={"code": batch[0]["code"]})) == "redeem_code_used"
    )
    unknown = api.user(key, "POST", "/redeem", json={"code": "rc-nope"})
    assert unknown.status_code == 400 and error_code(unknown) == "redeem_code_invalid"
    assert api.user(key, "POST", "/redeem", json={}).status_code == 400

    wait_until(lambda: time.time() * 1000 > soon, timeout=5)
    expired = api.user(key, "POST", "/redeem", json={"code": expiring["code"]})
    assert expired.status_code == 400 and error_code(expired) == "redeem_code_expired"
    assert api.balance(key) == 1_500_000

    ledger = api.ok("GET", f"/users/{user['id']}/ledger")["data"]
    assert ledger[0]["kind"] == "redeem" and ledger[0]["amount"] == 1_000_000

    listing = api.admin("GET", "/redeem-codes", params={"per_page": 500})
    assert listing.status_code == 200 and all(c["code"] not in listing.text for c in batch)
    rows = {c["id"]: c for c in listing.json()["data"]}
    used = rows[batch[0]["id"]]
    assert used["used_by"] == user["id"] and used["used_by_name"] == user["username"] and used["used_at"]
    assert used["name"] == name and used["code_hint"] == f"{batch[0]['code'][:6]}…{batch[0]['code'][-4:]}"
    assert batch[0]["id"] in {
        c["id"] for c in api.ok("GET", "/redeem-codes", params={"status": "used"})["data"]
    }
    assert expiring["id"] in {
        c["id"] for c in api.ok("GET", "/redeem-codes", params={"status": "expired"})["data"]
    }


def test_delete_codes_and_bad_batches(api: Api) -> None:
    codes = api.ok("POST", "/redeem-codes", 201, json={"count": 2, "quota": 10})["data"]
    assert api.ok("DELETE", f"/redeem-codes/{codes[0]['id']}")["deleted"]
    assert api.admin("DELETE", f"/redeem-codes/{codes[0]['id']}").status_code == 404
    key = api.new_key(api.new_user()["id"])
    gone = api.user(key, "POST", "/redeem", json={"code": codes[0]["code"]})
    assert error_code(gone) == "redeem_code_invalid"
    assert api.user(key, "POST", "/redeem", json={"code": codes[1]["code"]}).status_code == 200
    kept = api.admin("DELETE", f"/redeem-codes/{codes[1]['id']}")
    assert kept.status_code == 409 and error_code(kept) == "conflict"
    for bad in (
        {"count": 0, "quota": 1},
        {"count": 1001, "quota": 1},
        {"quota": 0},
        {"count": 1},
        {"quota": 1, "usd": 1},
        {"quota": 1, "expires_at": "2001-01-01"},
    ):
        assert api.admin("POST", "/redeem-codes", json=bad).status_code == 400, bad
