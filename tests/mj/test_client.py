"""A midjourney-proxy client's calls, with the bodies its API docs show (empty `base64`,
`notifyHook` and `state` included), unchanged: once with the key in `mj-api-secret`, as a client
set up for a bare midjourney-proxy sends it, once as a bearer key."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.mj.kit import new_user
from tests.simulator.mjkit import data_url
from tests.support.processes import Gateway


def _wait(http: httpx.Client, task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        task = http.get(f"/mj/task/{task_id}/fetch").json()
        if task["status"] in ("SUCCESS", "FAILURE"):
            return dict(task)
        time.sleep(0.1)
    raise AssertionError(task)


@pytest.mark.parametrize("auth", ["mj-api-secret", "bearer"])
def test_the_documented_call_sequence_works_unchanged(gw: Gateway, auth: str) -> None:
    _, key = new_user(gw)
    headers = {"mj-api-secret": key} if auth == "mj-api-secret" else {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=60) as http:
        # 1. imagine (midjourney-proxy's docs/api.md example body)
        r = http.post(
            "/mj/submit/imagine", json={"base64": "", "notifyHook": "", "prompt": "Cat", "state": ""}
        )
        submitted = r.json()
        assert r.status_code == 200 and submitted["code"] == 1, submitted
        # 2. poll the task until it ends
        task = _wait(http, submitted["result"])
        assert task["status"] == "SUCCESS" and task["progress"] == "100%" and task["imageUrl"]
        # 3. press a button: the plus API's action, with the documented fields
        button = next(b for b in task["buttons"] if b["label"] == "V1")  # type: ignore[union-attr]
        r = http.post(
            "/mj/submit/action",
            json={
                "customId": button["customId"],
                "taskId": task["id"],
                "notifyHook": "",
                "state": "",
                "chooseSameChannel": True,
            },
        )
        assert r.json()["code"] == 1, r.json()
        variation = _wait(http, r.json()["result"])
        assert variation["status"] == "SUCCESS" and variation["action"] == "VARIATION"
        # ids parsed as numbers (the AITRE docs show `result` as a number) work too
        r = http.post("/mj/submit/action", json={"customId": button["customId"], "taskId": int(task["id"])})  # type: ignore[call-overload]
        assert r.json()["code"] == 1, r.json()
        # 4. describe and blend with the documented bodies
        pic = data_url((90, 60), (30, 30, 200, 255))
        r = http.post("/mj/submit/describe", json={"base64": pic, "notifyHook": "", "state": ""})
        assert _wait(http, r.json()["result"])["action"] == "DESCRIBE"
        r = http.post(
            "/mj/submit/blend",
            json={"base64Array": [pic, data_url()], "dimensions": "SQUARE", "notifyHook": "", "state": ""},
        )
        assert _wait(http, r.json()["result"])["action"] == "BLEND"
        # 5. the task list by ids
        r = http.post("/mj/task/list-by-condition", json={"ids": [task["id"], variation["id"]]})
        assert [t["id"] for t in r.json()] == [task["id"], variation["id"]]
        # the picture downloads without a key (a capability link, like the CDN links MJ gives)
        assert httpx.get(str(task["imageUrl"])).headers["content-type"] == "image/png"
