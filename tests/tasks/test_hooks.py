"""notifyHook calls: every state of a task reaches the receiver, signed; a receiver that answers
500 is called again; the operator's hook gets the tasks that name none, under its own key; a call
that failed for good can be sent again."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aitre.tasks.signing import verify
from tests.support.processes import Gateway, wait_until
from tests.tasks.kit import FAST, HookReceiver, StubUpstream, admin, start_gateway, submit_ok, wait_final

OPERATOR_SECRET = "operator-secret"


@pytest.fixture(scope="module")
def operator_hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def hgw(
    tmp_path_factory: pytest.TempPathFactory, stub: StubUpstream, operator_hooks: HookReceiver
) -> Iterator[Gateway]:
    gateway = Gateway(
        tmp_path_factory.mktemp("hooks-gw"),
        **FAST,
        AITRE_FETCH_ALLOWED_CIDRS="127.0.0.0/8",
        AITRE_TASK_NOTIFY_HOOK=operator_hooks.url(path="/operator"),
        AITRE_TASK_NOTIFY_SECRET=OPERATOR_SECRET,
        AITRE_NOTIFY_MAX_ATTEMPTS="3",
    )
    start_gateway(gateway, stub)
    yield gateway
    gateway.stop()


def _secret(gw: Gateway) -> str:
    resp = httpx.get(gw.url + "/api/user/hook-secret", headers={"Authorization": f"Bearer {gw.user_key}"})
    secret: str = resp.json()["secret"]
    return secret


def test_each_state_is_delivered_signed_and_a_500_is_retried(hgw: Gateway, hooks: HookReceiver) -> None:
    secret = _secret(hgw)
    hooks.answers = [500]
    task_id = submit_ok(hgw, cost=100, steps=3, step_s=1.0, notifyHook=hooks.url(), state="abc")
    wait_final(hgw, task_id)
    wait_until(lambda: hooks.calls and hooks.calls[-1].json()["status"] == "succeeded")
    for call in hooks.calls:
        assert verify(secret, call.headers["x-aitre-signature"], call.body), call.headers
        assert call.headers["x-aitre-task-id"] == task_id
        assert call.json()["state"] == "abc"
    # The first call (answered 500) came again under the same delivery id.
    ids = [c.headers["x-aitre-delivery"] for c in hooks.calls]
    assert ids[0] == ids[1]
    delivered = {c.headers["x-aitre-delivery"]: c.json() for c in hooks.calls}
    seen = [(p["status"], p["progress"]) for p in delivered.values()]
    order = ["submitting", "running", "succeeded"]
    assert [s for s, _ in seen] == sorted((s for s, _ in seen), key=order.index)
    assert {s for s, _ in seen} == set(order)
    assert seen[0] == ("submitting", 0) and seen[-1] == ("succeeded", 100)
    progress = [p for s, p in seen if s == "running"]
    assert progress == sorted(progress) and len(progress) >= 3  # each step (0, 33, 66), in order
    calls = admin(hgw, "GET", f"/api/admin/tasks/{task_id}").json()["deliveries"]
    assert calls[0]["attempts"] == 2 and calls[0]["status"] == "delivered"
    assert all(c["status"] == "delivered" for c in calls)
    # A wrong key does not verify.
    assert not verify("whsec_wrong", hooks.calls[-1].headers["x-aitre-signature"], hooks.calls[-1].body)


def test_the_operators_hook_gets_tasks_without_their_own(hgw: Gateway, operator_hooks: HookReceiver) -> None:
    task_id = submit_ok(hgw, cost=100, steps=1, step_s=0.1)
    wait_final(hgw, task_id)
    mine = wait_until(
        lambda: [
            c
            for c in operator_hooks.calls
            if c.headers["x-aitre-task-id"] == task_id and c.json()["status"] == "succeeded"
        ]
    )
    assert mine[0].path == "/operator"
    assert verify(OPERATOR_SECRET, mine[0].headers["x-aitre-signature"], mine[0].body)


def test_a_failed_delivery_can_be_sent_again(hgw: Gateway, hooks: HookReceiver) -> None:
    hooks.answers = [500] * 30
    task_id = submit_ok(hgw, cost=100, steps=1, step_s=0.1, notifyHook=hooks.url())
    wait_final(hgw, task_id)

    def failed() -> list[dict[str, object]]:
        calls = admin(hgw, "GET", f"/api/admin/tasks/{task_id}").json()["deliveries"]
        return [c for c in calls if c["status"] == "failed"]

    first = wait_until(failed)[0]
    assert first["attempts"] == 3 and first["last_status"] == 500
    hooks.answers = []
    retried = admin(hgw, "POST", f"/api/admin/deliveries/{first['id']}/retry")
    assert retried.status_code == 200, retried.text
    wait_until(
        lambda: (
            next(
                c
                for c in admin(hgw, "GET", f"/api/admin/tasks/{task_id}").json()["deliveries"]
                if c["id"] == first["id"]
            )["status"]
            == "delivered"
        )
    )
    again = admin(hgw, "POST", f"/api/admin/deliveries/{first['id']}/retry")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "delivery_not_failed")
    # And from the CLI.
    hooks.answers = [500] * 30
    other = submit_ok(hgw, cost=100, steps=1, step_s=0.1, notifyHook=hooks.url())
    wait_final(hgw, other)
    calls = wait_until(
        lambda: [
            c
            for c in admin(hgw, "GET", f"/api/admin/tasks/{other}").json()["deliveries"]
            if c["status"] == "failed"
        ]
    )
    hooks.answers = []
    hgw.cli("task", "retry-delivery", str(calls[0]["id"]))
    wait_until(
        lambda: (
            next(
                c
                for c in admin(hgw, "GET", f"/api/admin/tasks/{other}").json()["deliveries"]
                if c["id"] == calls[0]["id"]
            )["status"]
            == "delivered"
        )
    )
