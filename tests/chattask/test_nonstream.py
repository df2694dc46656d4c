"""`sora_video2` by chat without `stream`: one `chat.completion` with the same final text once the
video is done; when the wait bound passes, one naming the task and where to follow it (the task
goes on; the user can cancel it, refunded)."""

from __future__ import annotations

import httpx

from tests.chattask.kit import LINK, ask, ended_hold, new_user, quota, user_task
from tests.simulator.media import video_info
from tests.support.clients import client
from tests.support.processes import Gateway


def test_non_stream_answers_once_with_the_link(gw: Gateway) -> None:
    _, key = new_user(gw)
    raw = client(gw, key).chat.completions.with_raw_response.create(
        model="sora_video2-portrait-15s", messages=ask("a paper boat on a river")
    )
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "sora_video2-portrait-15s"
    choice = answer.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    link = LINK.search(choice.message.content or "")
    assert (choice.message.content or "").startswith("video generated successful,[click here](") and link
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    task_id = raw.headers["x-aitre-task-id"]
    info = video_info(httpx.get(link[1]).content)
    assert info.frames == 150 and abs(info.seconds - 15) < 0.2 and info.size == (180, 320)
    assert user_task(gw, key, task_id).json()["url"] == link[1]


def test_wait_bound_names_the_task_and_it_goes_on(gw: Gateway) -> None:
    name, key = new_user(gw)
    before = quota(gw, name)
    # `--sim-stuck`: the simulator's job stays at 50% forever; the gateway waits 4 s
    raw = client(gw, key).chat.completions.with_raw_response.create(
        model="sora_video2", messages=ask("a clock that never strikes --sim-stuck")
    )
    content = raw.parse().choices[0].message.content or ""
    task_id = raw.headers["x-aitre-task-id"]
    assert "still being made" in content and task_id in content
    assert f"GET /v1/videos/{task_id}" in content and f"GET /api/user/tasks/{task_id}" in content
    shown = user_task(gw, key, task_id).json()
    assert shown["status"] == "in_progress" and shown["progress"] == 50 and shown["url"] is None
    assert quota(gw, name) == before - 500_000  # reserved while it runs
    cancelled = httpx.post(
        f"{gw.url}/api/user/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {key}"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "failed"
    assert cancelled.json()["error"]["code"] == "cancelled"
    assert ended_hold(gw, task_id) == {"reserve": -500_000, "refund": 500_000}
    assert quota(gw, name) == before
