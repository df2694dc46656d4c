"""Tasks through the admin API and the CLI: list with filters, inspect, cancel (refunded, the
upstream told to stop); the user's hook secret; notifyHooks on private addresses refused."""

from __future__ import annotations

import json

import httpx

from tests.support.processes import Gateway, wait_until
from tests.tasks.kit import (
    HookReceiver,
    StubUpstream,
    admin,
    balance,
    submit,
    submit_ok,
    task,
    wait_billed,
    wait_final,
)


def test_admin_lists_inspects_and_cancels_tasks(gw: Gateway, stub: StubUpstream) -> None:
    before = balance(gw)
    done_id = submit_ok(gw, cost=100, steps=1, step_s=0.1)
    open_id = submit_ok(gw, cost=250, mode="never")
    wait_final(gw, done_id)
    wait_until(lambda: task(gw, open_id)["status"] == "running")

    running = admin(gw, "GET", "/api/admin/tasks", params={"status": "open", "kind": "stub"}).json()
    assert open_id in [t["id"] for t in running["data"]]
    assert done_id not in [t["id"] for t in running["data"]]
    user_id = running["data"][0]["user_id"]
    mine = admin(gw, "GET", "/api/admin/tasks", params={"user_id": user_id, "per_page": 500}).json()
    assert {done_id, open_id} <= {t["id"] for t in mine["data"]}
    assert admin(gw, "GET", "/api/admin/tasks", params={"user_id": 999999}).json()["total"] == 0
    bad = admin(gw, "GET", "/api/admin/tasks", params={"status": "nonsense"})
    assert (bad.status_code, bad.json()["error"]["type"]) == (400, "invalid_request_error")

    detail = admin(gw, "GET", f"/api/admin/tasks/{done_id}").json()
    assert detail["history"][0]["status"] == "queued"
    assert detail["history"][-1]["status"] == "succeeded"
    assert detail["media"] and detail["cost"] == 100
    assert admin(gw, "GET", "/api/admin/tasks/nope").status_code == 404

    cancelled = admin(gw, "POST", f"/api/admin/tasks/{open_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = admin(gw, "POST", f"/api/admin/tasks/{open_id}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "task_finished")
    assert wait_billed(gw, open_id)["cost"] == 0
    upstream_id = admin(gw, "GET", f"/api/admin/tasks/{open_id}").json()["upstream_id"]
    wait_until(lambda: upstream_id in stub.stats()["cancels"])
    assert balance(gw) == before - 100
    # Only admins.
    denied = httpx.get(gw.url + "/api/admin/tasks", headers={"Authorization": f"Bearer {gw.user_key}"})
    assert denied.status_code == 403


def test_the_cli_lists_shows_and_cancels_tasks(gw: Gateway, stub: StubUpstream) -> None:
    before = balance(gw)
    open_id = submit_ok(gw, cost=400, mode="never")
    wait_until(lambda: task(gw, open_id)["status"] == "running")
    listed = json.loads(gw.cli("task", "list", "--status", "running", "--kind", "stub", "--json").stdout)
    assert open_id in [t["id"] for t in listed]
    shown = json.loads(gw.cli("task", "show", open_id, "--json").stdout)
    assert (shown["id"], shown["status"], shown["reserved"]) == (open_id, "running", 400)
    gw.cli("task", "cancel", open_id)
    # The running gateway finishes what the CLI started: refund, and the upstream told to stop.
    assert wait_billed(gw, open_id)["cost"] == 0
    assert task(gw, open_id)["status"] == "cancelled"
    upstream_id = shown["upstream_id"]
    wait_until(lambda: upstream_id in stub.stats()["cancels"])
    assert balance(gw) == before
    again = gw.cli("task", "cancel", open_id, check=False)
    assert again.returncode == 1
    assert "cancelled already" in again.stderr + again.stdout
    missing = gw.cli("task", "show", "nope", check=False)
    assert missing.returncode == 1


def test_the_hook_secret_is_made_once_and_rotates(gw: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gw.user_key}"}
    first = httpx.get(gw.url + "/api/user/hook-secret", headers=headers).json()
    assert first["secret"].startswith("whsec_")
    assert first["header"] == "X-Aitre-Signature"
    assert httpx.get(gw.url + "/api/user/hook-secret", headers=headers).json()["secret"] == first["secret"]
    rotated = httpx.post(gw.url + "/api/user/hook-secret", headers=headers).json()["secret"]
    assert rotated != first["secret"]
    assert httpx.get(gw.url + "/api/user/hook-secret", headers=headers).json()["secret"] == rotated
    stored = gw.sql("SELECT hook_secret_enc FROM users WHERE hook_secret_enc != ''")
    assert stored and all(rotated not in r["hook_secret_enc"] for r in stored)  # kept encrypted


def test_a_notify_hook_on_a_private_address_is_refused(gw: Gateway, hooks: HookReceiver) -> None:
    before = balance(gw)
    literal = submit(gw, cost=100, notifyHook=hooks.url("127.0.0.1"))
    assert literal.status_code == 400
    assert literal.json()["error"]["code"] == "invalid_notify_hook"
    assert balance(gw) == before
    # A name is checked when it is called: it resolves to loopback, the call is refused, not tried again.
    task_id = submit_ok(gw, cost=100, steps=1, step_s=0.1, notifyHook=hooks.url("localhost"))
    wait_final(gw, task_id)
    calls = wait_until(
        lambda: (
            (d := admin(gw, "GET", f"/api/admin/tasks/{task_id}").json()["deliveries"])
            and all(c["status"] in ("failed", "superseded") for c in d)
            and d
        )
    )
    failed = [c for c in calls if c["status"] == "failed"]
    assert failed and all(c["attempts"] == 1 for c in failed)
    assert "may not fetch from" in failed[0]["last_error"]
    assert hooks.calls == []


def test_an_upstream_callback_makes_a_running_task_polled_now(gw: Gateway) -> None:
    task_id = submit_ok(gw, cost=100, mode="never")
    wait_until(lambda: task(gw, task_id)["status"] == "running")

    def poke() -> bool:
        polled: bool = httpx.post(gw.url + "/stub/callback", params={"id": task_id}).json()["polled"]
        return polled

    assert wait_until(poke)  # (False while a worker happens to hold it: it is being polled then)
    admin(gw, "POST", f"/api/admin/tasks/{task_id}/cancel")
    wait_billed(gw, task_id)
    assert httpx.post(gw.url + "/stub/callback", params={"id": task_id}).json()["polled"] is False
    assert httpx.post(gw.url + "/stub/callback", params={"id": "nope"}).json()["polled"] is False
