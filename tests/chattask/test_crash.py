"""A gateway killed (SIGKILL) while a video or a removal runs, then started again:

- a video on a `chat-video` upstream: the answer stream died with the process, and a chat
  upstream cannot be asked for it again: the task fails (`upstream_stream_lost`), refunded
  exactly, and the upstream was asked once (never a second job); killed before the upstream
  answered at all: `submit_uncertain`, refunded, not sent again;
- a removal on the local engine: aitre's own work, started again by the new process; it
  completes and is charged once.

A video on a `/v1/videos` upstream, however it was asked for, is polled again after a restart and
completes, charged once: tests/video/test_channel.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.chattask.kit import (
    FAST,
    LINK,
    ask,
    channels,
    configure_simulator,
    ended_hold,
    new_user,
    quota,
    sim_chats,
    wait_task,
)
from tests.support.clients import client
from tests.support.processes import Gateway, Simulator, wait_until

pytestmark = pytest.mark.slow


def _task(gw: Gateway, task_id: str) -> dict[str, Any]:
    row = dict(gw.sql("SELECT status, progress, result FROM tasks WHERE id = ?", (task_id,))[0])
    row["result"] = orjson.loads(row["result"]) if isinstance(row["result"], str) else row["result"]
    return row


def _start_and_leave(gw: Gateway, key: str, model: str, content: str) -> str:
    """A streamed request whose client leaves once the task exists; its id."""
    body = {"model": model, "messages": ask(content), "stream": True}
    with httpx.stream(
        "POST", gw.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        assert r.status_code == 200, r.read()
        return str(r.headers["x-aitre-task-id"])


def _gateway(make_gateway: Callable[..., Gateway], simulator: Simulator, **env: str) -> Gateway:
    gw = make_gateway(**{**FAST, **env})
    gw.start()
    gw.apply(channels(simulator))
    return gw


def test_sigkill_while_a_chat_upstream_streams(
    make_gateway: Callable[..., Gateway], simulator: Simulator
) -> None:
    configure_simulator(simulator, video_step_seconds=1.0)  # the job runs ~5 s upstream
    gw = _gateway(make_gateway, simulator)
    name, key = new_user(gw)
    before = quota(gw, name)
    since = time.time()
    task_id = _start_and_leave(gw, key, "sora_video2-landscape", "a harbour at dawn")
    wait_until(lambda: _task(gw, task_id)["progress"] > 0, 15)
    gw.proc.kill()  # SIGKILL, mid-answer
    gw.start()
    shown = wait_task(gw, key, task_id)
    assert shown["status"] == "failed" and shown["error"]["code"] == "upstream_stream_lost"
    assert "cannot be asked for it again" in shown["error"]["message"]
    assert ended_hold(gw, task_id) == {"reserve": -500_000, "refund": 500_000}
    assert quota(gw, name) == before
    chats = sim_chats(simulator, "sora_video2-landscape", since)
    assert len(chats) == 1 and chats[0]["outcome"] == "disconnected"  # one upstream job, never resent
    assert [r["request_id"] for r in gw.sql("SELECT request_id FROM usage_logs")].count(task_id) == 1


def test_sigkill_before_a_chat_upstream_answered(
    make_gateway: Callable[..., Gateway], simulator: Simulator
) -> None:
    # The upstream takes 5 s to answer: the gateway dies with the submit in flight.
    simulator.set_faults({"spec": "delay=5", "model": "sora_video2-portrait-15s"})
    gw = _gateway(make_gateway, simulator)
    name, key = new_user(gw)
    before = quota(gw, name)
    since = time.time()
    task_id = _start_and_leave(gw, key, "sora_video2-portrait-15s", "a glacier")
    wait_until(lambda: _task(gw, task_id)["status"] == "submitting", 15)
    wait_until(lambda: sim_chats(simulator, "sora_video2-portrait-15s", since), 15)
    gw.proc.kill()  # SIGKILL: did the request arrive? A chat upstream cannot say.
    gw.start()
    shown = wait_task(gw, key, task_id)
    assert shown["status"] == "failed" and shown["error"]["code"] == "submit_uncertain", shown
    assert ended_hold(gw, task_id) == {"reserve": -750_000, "refund": 750_000}
    assert quota(gw, name) == before
    time.sleep(0.5)
    assert len(sim_chats(simulator, "sora_video2-portrait-15s", since)) == 1  # never sent again


def test_sigkill_during_a_local_removal(make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
    # A big clip, encoded slowly: the removal takes seconds, long enough to kill it mid-way.
    configure_simulator(simulator, video_max_side=0)
    gw = _gateway(make_gateway, simulator, AITRE_REMOVER_PRESET="veryslow")
    name, key = new_user(gw)
    made = client(gw, key, timeout=60).chat.completions.create(
        model="sora_video2-landscape", messages=ask("a mill")
    )
    link = LINK.search(made.choices[0].message.content or "")
    assert link
    before = quota(gw, name)
    task_id = _start_and_leave(gw, key, "sora_remover", link[1])
    first_runner = wait_until(
        lambda: (t := _task(gw, task_id))["status"] == "running" and t["result"]["runner"], 15
    )
    time.sleep(0.5)
    assert _task(gw, task_id)["status"] == "running"
    gw.proc.kill()  # SIGKILL, mid-removal
    gw.start()
    shown = wait_task(gw, key, task_id, timeout=90)
    assert shown["status"] == "succeeded" and shown["url"], shown
    assert _task(gw, task_id)["result"]["runner"] != first_runner  # the new process ran it again
    assert ended_hold(gw, task_id) == {"reserve": -25_000, "settle": 0}
    assert quota(gw, name) == before - 25_000
    frames = httpx.get(shown["url"]).content
    assert frames[4:8] == b"ftyp"
