"""Reading balances and the ledger of a gateway's database, for billing tests."""

from __future__ import annotations

import httpx

from tests.support.processes import Gateway, wait_until


def balance(gw: Gateway, username: str) -> int:
    return int(gw.sql("SELECT quota FROM users WHERE username = ?", (username,))[0]["quota"])


def ledger_sum(gw: Gateway, username: str) -> int:
    row = gw.sql(
        "SELECT COALESCE(SUM(l.amount), 0) AS s FROM ledger l JOIN users u ON u.id = l.user_id WHERE u.username = ?",
        (username,),
    )[0]
    return int(row["s"])


def entries(gw: Gateway, hold_id: str) -> dict[str, int]:
    rows = gw.sql("SELECT kind, amount FROM ledger WHERE hold_id = ?", (hold_id,))
    return {r["kind"]: int(r["amount"]) for r in rows}


ENDINGS = ("settle", "refund", "charge")  # `charge`: a reserve and its settle written as one row


def wait_settled(gw: Gateway, hold_id: str, timeout: float = 10.0) -> dict[str, int]:
    """The ledger entries of a request once it has ended (settled, refunded, or charged)."""
    return dict(
        wait_until(lambda: (e := entries(gw, hold_id)) and any(k in e for k in ENDINGS) and e, timeout)
    )


def charged(e: dict[str, int]) -> int:
    """What a request cost its user, from its ledger entries."""
    return -sum(e.values())


def consistent(gw: Gateway, username: str) -> bool:
    """The invariant: the balance column equals the sum of the ledger."""
    return balance(gw, username) == ledger_sum(gw, username)


def new_user_key(gw: Gateway, username: str, quota: int) -> str:
    """A new user with `quota` units and a key for it, through the admin API."""
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    user = httpx.post(f"{gw.url}/api/admin/users", json={"username": username, "quota": quota}, headers=admin)
    assert user.status_code == 201, user.text
    key = httpx.post(f"{gw.url}/api/admin/keys", json={"user_id": user.json()["id"]}, headers=admin)
    assert key.status_code == 201, key.text
    return str(key.json()["key"])
