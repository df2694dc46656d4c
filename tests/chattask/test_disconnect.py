"""A client that leaves ends only its answer: the video is still made (the upstream's answer read
to its end), charged once when it is done, and found in the user's task list with its link."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.chattask.kit import LINK, ask, configure_simulator, ended_hold, new_user, quota, wait_task
from tests.simulator.media import video_info
from tests.support.clients import client
from tests.support.processes import Gateway, Simulator


def _leave_after_first_progress(gw: Gateway, key: str, model: str) -> str:
    body = {"model": model, "messages": ask("a lighthouse at night"), "stream": True}
    with httpx.stream(
        "POST", gw.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        task_id = r.headers["x-aitre-task-id"]
        for line in r.iter_lines():
            if "> progress" in line:
                break
    return task_id  # the connection is closed here, mid-answer


def test_client_leaves_mid_stream_and_the_task_completes(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_step_seconds=0.4)
    name, key = new_user(gw)
    before = quota(gw, name)
    since = time.time()
    task_id = _leave_after_first_progress(gw, key, "sora_video2-portrait")
    shown = wait_task(gw, key, task_id)
    assert shown["status"] == "completed" and shown["progress"] == 100
    assert LINK.search(f"[click here]({shown['url']})")
    assert video_info(httpx.get(shown["url"]).content).frames == 100
    assert ended_hold(gw, task_id) == {"reserve": -500_000, "settle": 0}
    assert quota(gw, name) == before - 500_000
    listed = httpx.get(
        f"{gw.url}/api/user/tasks", params={"kind": "video"}, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert [t["id"] for t in listed["data"]] == [task_id] and listed["total"] == 1
    # the upstream's answer was read to its end, not dropped with the client
    chats = [e for e in simulator.events() if e["started"] >= since and e["model"] == "sora_video2-portrait"]
    assert [e["outcome"] for e in chats] == ["completed"]


def test_client_leaves_a_non_streamed_request(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_step_seconds=0.4)
    name, key = new_user(gw)
    sdk = client(gw, key, timeout=1.0)
    with pytest.raises(openai.APITimeoutError):  # the SDK gives up after a second: the connection closes
        sdk.chat.completions.create(model="sora_video2", messages=ask("a dune"))
    rows = gw.sql("SELECT id FROM tasks WHERE user_id = (SELECT id FROM users WHERE username = ?)", (name,))
    assert len(rows) == 1
    shown = wait_task(gw, key, rows[0]["id"])
    assert shown["status"] == "completed" and shown["url"]
