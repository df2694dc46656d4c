"""Driving aitre's MJ API as a midjourney-proxy client does: submit, fetch until the end, press
buttons; users with a balance; the ledger of a task.

Also for the task engine's tests (a SIGKILL while MJ tasks run, two instances): `fast_gateway`
starts a gateway whose built-in simulator draws MJ tasks in `step_seconds` steps (slow them down
to kill mid-task; `--sim-stuck` in a prompt keeps a task running), `Mj(gw, new_user(gw))` submits
and follows them, `ledger(gw, task_id)` reads the task's hold once it has ended."""

from __future__ import annotations

import time
import uuid
from types import TracebackType
from typing import Any

import httpx

from tests.billing.helpers import entries
from tests.simulator.mjkit import DONE
from tests.support.processes import Gateway, wait_until

# Tasks polled often, so that a task on a fast simulator ends in a fraction of a second.
FAST = {"AITRE_TASK_POLL_MIN_SECONDS": "0.05", "AITRE_TASK_POLL_MAX_SECONDS": "0.2"}


def fast_gateway(gw: Gateway, step_seconds: float = 0.05) -> Gateway:
    """Start `gw` (made with `**FAST`) and speed up its built-in simulator's MJ clock."""
    gw.start()
    try:
        gw.sim_control("/_sim/config", {"mj_step_seconds": step_seconds}).raise_for_status()
    except BaseException:
        gw.stop()  # a fixture that fails in set-up is not torn down
        raise
    return gw


def new_user(gw: Gateway, usd: str = "10", quota: int | None = None) -> tuple[str, str]:
    """(username, key) of a new user with `usd` dollars (or `quota` units)."""
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    name = f"mj-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"username": name, **({"quota": quota} if quota is not None else {"usd": usd})}
    user = httpx.post(f"{gw.url}/api/admin/users", json=body, headers=admin)
    assert user.status_code == 201, user.text
    key = httpx.post(f"{gw.url}/api/admin/keys", json={"user_id": user.json()["id"]}, headers=admin)
    assert key.status_code == 201, key.text
    return name, str(key.json()["key"])


class Mj:
    def __init__(self, gw: Gateway, user: tuple[str, str], header: str = "bearer") -> None:
        self.gw = gw
        self.username, self.key = user
        auth = {"Authorization": f"Bearer {self.key}"} if header == "bearer" else {"mj-api-secret": self.key}
        self.http = httpx.Client(base_url=gw.url, timeout=60, headers=auth)

    def __enter__(self) -> Mj:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.http.close()

    def submit(self, path: str, **body: Any) -> dict[str, Any]:
        path = path if path.startswith("/") else f"/mj/submit/{path}"
        r = self.http.post(path, json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        assert set(answer) == {"code", "description", "result", "properties"}, answer
        return answer

    def fetch(self, task_id: str) -> dict[str, Any]:
        r = self.http.get(f"/mj/task/{task_id}/fetch")
        assert r.status_code == 200, r.text
        task: dict[str, Any] = r.json()
        return task

    def run(self, task_id: str, timeout: float = 20.0) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Fetch until the task ends: its last state and every (status, progress) seen."""
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.fetch(task_id)
            if not seen or seen[-1] != (task["status"], task["progress"]):
                seen.append((task["status"], task["progress"]))
            if task["status"] in (*DONE, "CANCEL"):
                return task, seen
            time.sleep(0.03)
        raise AssertionError(f"task {task_id} did not end: {seen}")

    def done(self, path: str, **body: Any) -> dict[str, Any]:
        """Submit, expect code 1, and return the finished task (which must have succeeded)."""
        answer = self.submit(path, **body)
        assert answer["code"] == 1, answer
        task, _ = self.run(answer["result"])
        assert task["status"] == "SUCCESS", task
        return task

    def act(self, task: dict[str, Any], label: str) -> dict[str, Any]:
        (button,) = [b for b in task["buttons"] if label in (b["label"], b["emoji"])]
        return self.submit("action", taskId=task["id"], customId=button["customId"])

    def pressed(self, task: dict[str, Any], label: str) -> dict[str, Any]:
        answer = self.act(task, label)
        assert answer["code"] == 1, answer
        result, _ = self.run(answer["result"])
        assert result["status"] == "SUCCESS", result
        return result


def ledger(gw: Gateway, task_id: str, timeout: float = 10.0) -> dict[str, int]:
    """The task's hold once it has ended (settled or refunded): kind -> amount."""
    return dict(
        wait_until(
            lambda: (e := entries(gw, f"task_{task_id}")) and ("settle" in e or "refund" in e) and e, timeout
        )
    )
