"""The operator CLI: users, groups, keys with limits, redeem codes, channels, logs and usage,
against a running gateway, which picks every change up without a restart."""

from __future__ import annotations

import csv
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import SIM_KEY_2, Gateway, Simulator, wait_until


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _error(resp: httpx.Response) -> str | None:
    if resp.status_code == 200:
        return None
    code: str = resp.json()["error"]["code"]
    return code


def _balance(gw: Gateway, key: str) -> int:
    quota: int = httpx.get(gw.url + "/api/user/balance", headers={"Authorization": f"Bearer {key}"}).json()[
        "quota"
    ]
    return quota


def _json(gw: Gateway, *args: str) -> Any:
    return json.loads(gw.cli(*args, "--json").stdout)


def test_users_groups_and_keys_with_limits(gateway: Gateway) -> None:
    group, user = _name("team"), _name("carol")
    gateway.cli("group", "set", group, "--multiplier", "1.5", "--description", "the team")
    gateway.cli("user", "create", user, "--group", group, "--quota", "$2")
    key = gateway.cli(
        "token", "create", "--user", user, "--name", "ci", "--quota", "$1", "--expires", "+30d",
        "--models", "gpt-4o-mini", "--ips", "127.0.0.1", "--rpm", "100", "--tpm", "100000", "-q",
    ).stdout.strip()  # fmt: skip
    wait_until(lambda: gateway.chat(key).status_code == 200)

    [token] = _json(gateway, "token", "list", "--user", user)
    assert token["quota"] == 500_000 - token["used"] and token["models"] == "gpt-4o-mini"
    assert (token["ips"], token["rpm"], token["tpm"], token["enabled"]) == (
        "127.0.0.1/32",
        100,
        100000,
        "yes",
    )
    assert token["expires"] != "never" and key not in json.dumps(token)
    assert _error(gateway.chat(key, "gpt-4o")) == "model_not_allowed"

    gateway.cli("token", "update", str(token["id"]), "--models", "gpt-4o", "--quota", "unlimited")
    wait_until(lambda: _error(gateway.chat(key)) == "model_not_allowed")
    assert gateway.chat(key, "gpt-4o").status_code == 200

    before = _balance(gateway, key)
    gateway.cli("user", "topup", user, "$1", "--note", "bonus")
    wait_until(lambda: _balance(gateway, key) == before + 500_000)
    [row] = _json(gateway, "user", "list", "--group", group)
    assert row["username"] == user and row["group"] == group and row["quota"] == before + 500_000

    with ThreadPoolExecutor(4) as pool:
        refused = list(
            pool.map(
                lambda args: gateway.cli(*args, check=False),
                [
                    ("group", "delete", group),
                    ("token", "create", "--user", user, "--expires", "someday"),
                    ("token", "create", "--user", user, "--ips", "999.1.1.1"),
                    ("user", "topup", user, "lots"),
                ],
            )
        )
    messages = ["still has 1 user", "not a time", "not an IP address", "expected units"]
    for result, message in zip(refused, messages, strict=True):
        assert result.returncode == 1 and message in result.stderr, result.stderr

    gateway.cli("user", "disable", user)
    wait_until(lambda: gateway.chat(key, "gpt-4o").status_code == 401)


def test_redeem_codes(gateway: Gateway) -> None:
    codes = _json(gateway, "redeem", "create", "--quota", "$1", "--count", "2", "--name", "promo")
    assert len(codes) == 2 and all(c["code"].startswith("rc-") and c["quota"] == 500_000 for c in codes)
    resp = httpx.post(
        gateway.url + "/api/user/redeem",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json={"code": codes[0]["code"]},
    )
    assert resp.status_code == 200 and resp.json()["added"] == 500_000
    used = {c["id"]: c for c in _json(gateway, "redeem", "list", "--status", "used")}
    assert used[codes[0]["id"]]["used by"] == "demo" and codes[1]["id"] not in used
    assert codes[0]["code"] not in json.dumps(used)


def test_channel_update_and_delete(gateway: Gateway, simulator: Simulator) -> None:
    name, model = _name("up"), _name("cli-model")
    gateway.cli(
        "channel", "add", name, "--base-url", simulator.url + "/v1", "--models", "placeholder",
        "--key", "sk-first-secret-1111", "--config", '{"note": "x"}',
    )  # fmt: skip
    gateway.cli(
        "channel", "update", name, "--models", model, "--map", f"{model}=gpt-4o-mini",
        "--key", SIM_KEY_2, "--priority", "3",
    )  # fmt: skip
    gateway.cli("price", "set", model, "--input", "1", "--output", "1")
    wait_until(lambda: gateway.chat(gateway.user_key, model).status_code == 200)
    listing = gateway.cli("channel", "list", "--json").stdout
    channel = next(c for c in json.loads(listing) if c["name"] == name)
    assert channel["key"] == "sk-…wxyz" and "secret" not in listing and SIM_KEY_2 not in listing
    assert (channel["models"], channel["mapping"], channel["priority"]) == (model, f"{model}=gpt-4o-mini", 3)
    gateway.cli("channel", "delete", name)
    wait_until(lambda: _error(gateway.chat(gateway.user_key, model)) == "model_not_found")


def test_logs_csv_and_usage(gateway: Gateway, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    user = httpx.post(
        gateway.url + "/api/admin/users", headers=admin, json={"username": _name("u"), "usd": "5"}
    ).json()
    key = httpx.post(gateway.url + "/api/admin/keys", headers=admin, json={"user_id": user["id"]}).json()[
        "key"
    ]
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini"):
        assert gateway.chat(key, model).status_code == 200
    name = user["username"]
    wait_until(lambda: len(_json(gateway, "logs", "--user", name)) == 3, timeout=20)
    rows = _json(gateway, "logs", "--user", name, "--model", "gpt-4.1-mini", "--since", "-1h")
    assert len(rows) == 1 and rows[0]["user"] == name and rows[0]["status"] == 200

    out = tmp_path / "usage.csv"
    gateway.cli("logs", "--user", name, "--csv", str(out))
    with out.open(newline="") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == 3 and {r["username"] for r in records} == {name}

    summary = _json(gateway, "usage", "--user", name)
    assert summary["total"]["requests"] == 3
    assert summary["total"]["quota"] == sum(int(r["quota"]) for r in records)
    assert {m["model"]: m["requests"] for m in summary["by_model"]} == {"gpt-4o-mini": 2, "gpt-4.1-mini": 1}
    assert sum(d["requests"] for d in summary["by_day"]) == 3

    bad = gateway.cli("logs", "--since", "whenever", check=False)
    assert bad.returncode == 1 and "not a time" in bad.stderr
