"""The CLI manages channels, users and keys; running gateways pick the changes up."""

from __future__ import annotations

import json
import subprocess

import httpx
import openai
import pytest

from tests.support.clients import client
from tests.support.processes import SIM_KEY, Gateway, Simulator, aitre_cmd, wait_until


def test_help_lists_every_command() -> None:
    out = subprocess.run(aitre_cmd("--help"), capture_output=True, text=True, check=True).stdout
    for command in ("serve", "simulator", "migrate", "channel", "token", "user"):
        assert command in out
    for group, subs in (
        ("channel", ("add", "list", "disable", "enable")),
        ("token", ("create", "list", "revoke")),
    ):
        sub_help = subprocess.run(
            aitre_cmd(group, "--help"), capture_output=True, text=True, check=True
        ).stdout
        for sub in subs:
            assert sub in sub_help


def test_channel_lifecycle_drives_routing(gateway: Gateway, simulator: Simulator) -> None:
    gateway.cli(
        "channel",
        "add",
        "ext",
        "--base-url",
        simulator.url + "/v1",
        "--models",
        "ext-model",
        "--map",
        "ext-model=gpt-4o",
        "--key",
        SIM_KEY,
        "--priority",
        "5",
    )
    gateway.cli("price", "set", "ext-model", "--input", "1", "--output", "2")
    listing = gateway.cli("channel", "list", "--json").stdout
    ext = next(c for c in json.loads(listing) if c["name"] == "ext")
    assert ext["models"] == "ext-model" and ext["mapping"] == "ext-model=gpt-4o" and ext["priority"] == 5
    assert SIM_KEY not in listing + gateway.cli("channel", "list").stdout
    # Stored encrypted: the plain secret is nowhere in the database file.
    assert SIM_KEY.encode() not in (gateway.data_dir / "aitre.db").read_bytes()

    c = client(gateway)

    def answers() -> bool:
        try:
            r = c.chat.completions.create(model="ext-model", messages=[{"role": "user", "content": "hi"}])
        except (openai.NotFoundError, openai.InternalServerError):  # until the gateway sees the change
            return False
        return r.model == "gpt-4o"  # the mapped upstream name came back from the upstream

    wait_until(answers, timeout=10)
    assert any(e["model"] == "gpt-4o" for e in simulator.events())

    gateway.cli("channel", "disable", "ext", "--reason", "maintenance")
    ext = next(c for c in json.loads(gateway.cli("channel", "list", "--json").stdout) if c["name"] == "ext")
    assert ext["enabled"] == "no" and ext["note"] == "maintenance"

    def unavailable() -> bool:
        r = httpx.post(
            gateway.api + "/chat/completions",
            headers={"Authorization": f"Bearer {gateway.user_key}"},
            json={"model": "ext-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        return r.status_code == 503 and r.json()["error"]["code"] == "no_available_channel"

    wait_until(unavailable, timeout=10)
    gateway.cli("channel", "enable", "ext")
    wait_until(answers, timeout=10)


def test_channel_add_rejects_bad_input(gateway: Gateway) -> None:
    bad = gateway.cli("channel", "add", "x", "--type", "bogus", "--models", "a", check=False)
    assert bad.returncode == 1 and "unknown channel type" in bad.stderr
    missing_url = gateway.cli("channel", "add", "x", "--models", "a", check=False)
    assert missing_url.returncode == 1 and "base URL" in missing_url.stderr
    dup = gateway.cli("channel", "add", "simulator", "--type", "simulator", "--models", "a", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr


def test_token_create_list_revoke(gateway: Gateway) -> None:
    gateway.cli("user", "create", "alice", "--quota", "$1")
    key = gateway.cli("token", "create", "--user", "alice", "--name", "laptop", "-q").stdout.strip()
    assert key.startswith("sk-") and len(key) == 51
    c = client(gateway, key=key)
    assert c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    ).choices
    listing = gateway.cli("token", "list", "--user", "alice", "--json").stdout
    assert [t["name"] for t in json.loads(listing)] == ["laptop"] and key not in listing
    # Only the hash is stored.
    assert key.encode() not in (gateway.data_dir / "aitre.db").read_bytes()

    gateway.cli("token", "revoke", key)

    def rejected() -> bool:
        try:
            c.models.list()
        except openai.AuthenticationError:
            return True
        return False

    wait_until(rejected, timeout=10)
    assert (
        json.loads(gateway.cli("token", "list", "--user", "alice", "--json").stdout)[0]["enabled"]
        == "revoked"
    )


def test_token_create_for_unknown_user_fails(gateway: Gateway) -> None:
    result = gateway.cli("token", "create", "--user", "nobody", check=False)
    assert result.returncode == 1 and "no user" in result.stderr


@pytest.mark.parametrize("args", [("user", "create", "admin"), ("user", "create", "bob", "--role", "root")])
def test_user_create_rejects_duplicates_and_bad_roles(gateway: Gateway, args: tuple[str, ...]) -> None:
    assert gateway.cli(*args, check=False).returncode == 1
