"""Upstream failures end the answer with a clear error (in the stream: a line saying why, then an
`{"error": ...}` event the SDK raises) and the task refunded exactly: a job the upstream failed,
an answer cut off, an upstream that keeps refusing (tried on each submit attempt, then failed), a
request the upstream refuses as invalid. And the other way upstreams stream: sora2api's
`reasoning_content` progress and `<video>` link."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.chattask.kit import (
    LINK,
    ask,
    configure_simulator,
    ended_hold,
    new_user,
    quota,
    sim_chats,
    stream,
    user_task,
)
from tests.simulator.media import video_info
from tests.support.clients import client
from tests.support.processes import Gateway, Simulator

PORTRAIT_10S_UNITS = 500_000


def _refunded(gw: Gateway, name: str, before: int, task_id: str) -> None:
    assert ended_hold(gw, task_id) == {"reserve": -PORTRAIT_10S_UNITS, "refund": PORTRAIT_10S_UNITS}
    assert quota(gw, name) == before
    row = gw.wait_log(task_id)
    assert row["quota"] == 0 and row["status_code"] == 502


def test_upstream_failure_ends_the_stream_with_an_error_and_refunds(gw: Gateway) -> None:
    name, key = new_user(gw)
    before = quota(gw, name)
    got = stream(gw, key, {"model": "sora_video2", "messages": ask("a storm --sim-fail")})
    task_id = got.headers["x-aitre-task-id"]
    assert got.events[-1] == "[DONE]" and len(got.errors) == 1
    assert got.errors[0]["code"] == "video_generation_failed"
    assert "Video generation failed" in got.errors[0]["message"] and task_id in got.errors[0]["message"]
    assert "> ❌ Video generation failed: " in got.content and "refunded" in got.content
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in got.chunks)
    _refunded(gw, name, before, task_id)
    shown = user_task(gw, key, task_id).json()
    assert shown["status"] == "failed" and shown["error"]["code"] == "video_generation_failed"
    # the SDK raises it from the stream
    with pytest.raises(openai.APIError, match="Video generation failed"):
        for _ in client(gw, key).chat.completions.create(
            model="sora_video2", messages=ask("another storm --sim-fail"), stream=True
        ):
            pass


def test_answer_cut_off_fails_the_task(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_step_seconds=0.3)
    simulator.set_faults({"spec": "truncate=3", "model": "sora_video2"})
    name, key = new_user(gw)
    before = quota(gw, name)
    with pytest.raises(openai.APIError) as caught:
        client(gw, key).chat.completions.create(model="sora_video2", messages=ask("a bridge"))
    assert caught.value.code == "upstream_stream_lost"
    assert "broke off" in caught.value.message
    task_id = caught.value.response.headers["x-aitre-task-id"]
    _refunded(gw, name, before, task_id)


def test_upstream_refusing_is_tried_then_failed(gw: Gateway, simulator: Simulator) -> None:
    simulator.set_faults({"spec": "status=503", "model": "sora_video2-landscape-15s"})
    name, key = new_user(gw)
    before = quota(gw, name)
    since = time.time()
    got = stream(gw, key, {"model": "sora_video2-landscape-15s", "messages": ask("a tide")})
    task_id = got.headers["x-aitre-task-id"]
    assert got.errors and "no upstream took the task" in got.errors[0]["message"]
    assert len(sim_chats(simulator, "sora_video2-landscape-15s", since)) == 3  # AITRE_TASK_SUBMIT_ATTEMPTS
    assert ended_hold(gw, task_id) == {"reserve": -750_000, "refund": 750_000}
    assert quota(gw, name) == before


def test_upstream_refusal_is_the_requests_fault(gw: Gateway, simulator: Simulator) -> None:
    simulator.set_faults({"spec": "status=400", "model": "sora_video2-portrait"})
    name, key = new_user(gw)
    before = quota(gw, name)
    since = time.time()
    with pytest.raises(openai.BadRequestError) as caught:
        client(gw, key).chat.completions.create(model="sora_video2-portrait", messages=ask("a wall"))
    assert caught.value.code == "upstream_refused" and "HTTP 400" in caught.value.message
    assert len(sim_chats(simulator, "sora_video2-portrait", since)) == 1  # not tried again
    task_id = caught.value.response.headers["x-aitre-task-id"]
    assert ended_hold(gw, task_id)["refund"] == PORTRAIT_10S_UNITS and quota(gw, name) == before


def test_reasoning_style_upstream(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_chat_style="reasoning", video_step_seconds=0.4)
    _, key = new_user(gw)
    got = stream(gw, key, {"model": "sora_video2-landscape", "messages": ask("a kite")})
    assert not got.errors and got.events[-1] == "[DONE]"
    progress = [line for line in got.content.splitlines() if line.startswith("> progress")]
    assert len(progress) >= 2
    link = LINK.search(got.content.splitlines()[-1])
    assert link and video_info(httpx.get(link[1]).content).size == (320, 180)
