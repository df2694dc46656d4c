"""Abuse of the task-backed chat models: no key or a wrong one, huge bodies and prompts, malformed
messages, hostile links (other schemes, private and link-local addresses: refused before
anything is charged, or by the guarded fetcher when a name resolves to one), other users' task
ids, a key not allowed the model, a balance short of the price, too many open tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.chattask.kit import FAST, ask, channels, ended_hold, new_user, quota, user_task
from tests.support.processes import Gateway, Simulator


def post(gw: Gateway, body: Any, key: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gw.api + "/chat/completions", json=body, headers=headers, timeout=30, **kw)


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return error


def _no_task_and_no_charge(gw: Gateway, name: str, before: int) -> None:
    assert (
        gw.sql("SELECT id FROM tasks WHERE user_id = (SELECT id FROM users WHERE username = ?)", (name,))
        == []
    )
    assert quota(gw, name) == before


def test_keys(gw: Gateway) -> None:
    body = {"model": "sora_video2", "messages": ask("a cat"), "stream": True}
    _error(post(gw, body, None), 401, "missing_api_key")
    _error(post(gw, body, "sk-not-a-key-0000000000000000000000000000"), 401, "invalid_api_key")
    name, _ = new_user(gw)
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    uid = gw.sql("SELECT id FROM users WHERE username = ?", (name,))[0]["id"]
    only_chat = httpx.post(
        f"{gw.url}/api/admin/keys", json={"user_id": uid, "allowed_models": ["gpt-4o-mini"]}, headers=admin
    ).json()["key"]
    before = quota(gw, name)
    _error(post(gw, body, only_chat), 403, "model_not_allowed")
    _no_task_and_no_charge(gw, name, before)


@pytest.mark.parametrize(
    ("messages", "what"),
    [
        ("hi", "`messages` must be a non-empty array"),
        ([{"role": "system", "content": "x"}], "needs a user message"),
        ([{"role": "user", "content": ""}], "needs text"),
        ([{"role": "user", "content": {"a": 1}}], "string or an array"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "needs a `url`"),
        (ask("x" * 16_001), "longer than 16000"),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "two"},
                        *[{"type": "image_url", "image_url": {"url": "data:,"}}] * 2,
                    ],
                }
            ],
            "at most one",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "v"},
                        {"type": "video_url", "video_url": {"url": "https://x.example.com/v.mp4"}},
                    ],
                }
            ],
            "not a video",
        ),
    ],
)
def test_malformed_messages(gw: Gateway, messages: Any, what: str) -> None:
    name, key = new_user(gw)
    before = quota(gw, name)
    error = _error(post(gw, {"model": "sora_video2", "messages": messages}, key), 400)
    assert what in error["message"] and error["param"] == "messages"
    _no_task_and_no_charge(gw, name, before)


def test_huge_body(gw: Gateway) -> None:
    _, key = new_user(gw)
    huge = (
        b'{"model": "sora_video2", "messages": [{"role": "user", "content": "'
        + b"x" * (33 * 1024 * 1024)
        + b'"}]}'
    )
    r = httpx.post(
        gw.api + "/chat/completions",
        content=huge,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )
    _error(r, 413, "body_too_large")


HOSTILE = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.8/cat.png",
    "http://[::1]:6379/x.png",
    "http://0.0.0.0/x.png",
    "http://192.168.1.1/router.png",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_image_links_are_refused_before_charging(gw: Gateway, url: str) -> None:
    name, key = new_user(gw)
    before = quota(gw, name)
    error = _error(post(gw, {"model": "sora_video2", "messages": ask("a cat", url)}, key), 400, "invalid_url")
    assert error["param"] == "messages"
    _no_task_and_no_charge(gw, name, before)


@pytest.mark.parametrize("url", HOSTILE[2:])
def test_hostile_video_links_are_refused_before_charging(gw: Gateway, url: str) -> None:
    name, key = new_user(gw)
    before = quota(gw, name)
    _error(post(gw, {"model": "sora_remover", "messages": ask(f"clean {url}")}, key), 400, "invalid_url")
    _no_task_and_no_charge(gw, name, before)


def test_not_an_image(gw: Gateway) -> None:
    _, key = new_user(gw)
    error = _error(
        post(gw, {"model": "sora_video2", "messages": ask("a", "data:text/html,<b>hi</b>")}, key), 400
    )
    assert "not a PNG, JPEG, WEBP or GIF" in error["message"]
    _error(post(gw, {"model": "sora_remover", "messages": ask("no link at all")}, key), 400)


def test_other_users_tasks(gw: Gateway) -> None:
    _, mine = new_user(gw)
    _, theirs = new_user(gw)
    made = post(gw, {"model": "sora_video2", "messages": ask("a private video")}, theirs)
    assert made.status_code == 200, made.text
    task_id = made.headers["x-aitre-task-id"]
    assert user_task(gw, theirs, task_id).status_code == 200
    _error(user_task(gw, mine, task_id), 404, "not_found")
    cancel = httpx.post(
        f"{gw.url}/api/user/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {mine}"}
    )
    _error(cancel, 404, "not_found")
    listed = httpx.get(f"{gw.url}/api/user/tasks", headers={"Authorization": f"Bearer {mine}"}).json()
    assert listed["total"] == 0
    for hostile in ("%00", "..%2F..%2Fadmin", "x" * 5000, "video_' OR 1=1 --", "%E2%80%AE"):
        r = httpx.get(f"{gw.url}/api/user/tasks/{hostile}", headers={"Authorization": f"Bearer {mine}"})
        assert r.status_code == 404, (hostile, r.status_code)
    _error(httpx.get(f"{gw.url}/api/user/tasks/{task_id}"), 401)
    bad = httpx.get(
        f"{gw.url}/api/user/tasks", params={"status": "nope"}, headers={"Authorization": f"Bearer {mine}"}
    )
    _error(bad, 400)


def test_balance_short_of_the_price(gw: Gateway) -> None:
    name, key = new_user(gw, "0.5")  # a 10 s video costs $1
    _error(post(gw, {"model": "sora_video2", "messages": ask("a cat")}, key), 402, "insufficient_quota")
    _no_task_and_no_charge(gw, name, 250_000)


@pytest.fixture
def strict_gw(make_gateway: Callable[..., Gateway], simulator: Simulator) -> Gateway:
    """A gateway that may fetch no private address at all, one open task per user."""
    env = {k: v for k, v in FAST.items() if k != "AITRE_FETCH_ALLOWED_CIDRS"}
    gw = make_gateway(**env, AITRE_CHAT_TASK_MAX_OPEN="1")
    gw.start()
    gw.apply(channels(simulator))
    return gw


def test_names_that_resolve_to_private_addresses(strict_gw: Gateway) -> None:
    gw = strict_gw
    name, key = new_user(gw)
    before = quota(gw, name)
    # an image link is fetched before the task is made: refused, nothing charged
    error = _error(
        post(gw, {"model": "sora_video2", "messages": ask("a", f"http://localhost:{gw.port}/healthz")}, key),
        400,
        "invalid_url",
    )
    assert "may not fetch from" in error["message"], error
    _no_task_and_no_charge(gw, name, before)
    # a video link is fetched by the task: it fails on the guarded fetcher, refunded
    r = post(gw, {"model": "sora_remover", "messages": ask(f"http://localhost:{gw.port}/media/x.mp4")}, key)
    error = _error(r, 400, "invalid_url")
    task_id = r.headers["x-aitre-task-id"]
    assert task_id in error["message"] and "may not fetch from" in error["message"]
    assert ended_hold(gw, task_id) == {"reserve": -25_000, "refund": 25_000}
    assert quota(gw, name) == before


def test_open_tasks_are_bounded(strict_gw: Gateway) -> None:
    gw = strict_gw
    name, key = new_user(gw)
    with httpx.stream(
        "POST",
        gw.api + "/chat/completions",
        json={"model": "sora_video2", "messages": ask("forever --sim-stuck"), "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    ) as first:
        task_id = first.headers["x-aitre-task-id"]
        before = quota(gw, name)
        second = post(gw, {"model": "sora_video2", "messages": ask("another")}, key)
        _error(second, 429, "too_many_open_tasks")
        assert quota(gw, name) == before
    cancelled = httpx.post(
        f"{gw.url}/api/user/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {key}"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["error"]["code"] == "cancelled"
    assert ended_hold(gw, task_id)["refund"] == 500_000
