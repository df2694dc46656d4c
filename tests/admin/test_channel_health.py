"""The admin view of channel health, on-demand probes, and upstream balances."""

from __future__ import annotations

import httpx

from tests.support.processes import Gateway


def test_health_view_probe_and_balance(gateway: Gateway) -> None:
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    httpx.post(
        gateway.api + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {gateway.user_key}"},
    ).raise_for_status()
    rows = httpx.get(gateway.url + "/api/admin/channels/health", headers=admin).json()
    sim = next(r for r in rows if r["name"] == "simulator")
    assert sim["health"]["breaker"] == "closed"
    assert sim["health"]["requests_60s"] >= 1 and sim["health"]["error_rate_60s"] == 0.0

    probe = httpx.post(f"{gateway.url}/api/admin/channels/{sim['id']}/probe", headers=admin).json()
    assert probe == {"id": sim["id"], "ok": True}

    bal = httpx.post(f"{gateway.url}/api/admin/channels/{sim['id']}/balance", headers=admin).json()
    assert 0 < float(bal["balance_usd"]) < 100  # the simulator's 100 USD minus a cent per request
    again = httpx.get(gateway.url + "/api/admin/channels/health", headers=admin).json()
    assert next(r for r in again if r["id"] == sim["id"])["balance_usd"] == bal["balance_usd"]

    assert httpx.post(f"{gateway.url}/api/admin/channels/9999/probe", headers=admin).status_code == 404
    user = {"Authorization": f"Bearer {gateway.user_key}"}
    assert httpx.get(gateway.url + "/api/admin/channels/health", headers=user).status_code == 403
