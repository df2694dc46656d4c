"""Behind a reverse proxy, a key's IP allow-list and the usage log see the client's address
from X-Forwarded-For, and only when the proxy is one the operator trusts."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.processes import Gateway


def _key_for(gw: Gateway, ips: list[str]) -> str:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    users = httpx.get(f"{gw.url}/api/admin/users", headers=admin).json()["data"]
    uid = next(u["id"] for u in users if u["role"] != "admin")
    made = httpx.post(f"{gw.url}/api/admin/keys", json={"user_id": uid, "allowed_ips": ips}, headers=admin)
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _chat(gw: Gateway, key: str, forwarded: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{gw.api}/chat/completions", json=body, headers=headers, timeout=30)


def test_the_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "gw").start()  # 127.0.0.1 is trusted by default
    try:
        key = _key_for(gw, ["203.0.113.0/24"])
        direct = _chat(gw, key)
        assert direct.status_code == 403 and direct.json()["error"]["code"] == "ip_not_allowed"
        proxied = _chat(gw, key, "198.51.100.9, 203.0.113.7")
        assert proxied.status_code == 200, proxied.text
        assert gw.wait_log(proxied.headers["x-request-id"])["client_ip"] == "203.0.113.7"
    finally:
        gw.stop()


def test_an_untrusted_peer_cannot_claim_an_address(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "gw", AITRE_FORWARDED_ALLOW_IPS="10.0.0.1").start()
    try:
        key = _key_for(gw, ["203.0.113.0/24"])
        spoofed = _chat(gw, key, "203.0.113.7")
        assert spoofed.status_code == 403 and spoofed.json()["error"]["code"] == "ip_not_allowed"
    finally:
        gw.stop()
