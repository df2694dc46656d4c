"""No secret ever reaches the gateway's output or its data folder: traffic of every kind (chat,
stream, image, MJ with signed notifyHook calls, the admin API creating channels with known
upstream keys, upstreams that refuse a key or cannot be reached) with known secret strings,
then everything the gateway wrote is searched for them. The database keeps keys hashed and
channel secrets encrypted: the raw strings must not be in it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mj.kit import FAST, Mj
from tests.observe.kit import json_lines
from tests.support.processes import Gateway, Simulator, free_port, wait_until
from tests.tasks.kit import HookReceiver


def _secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}"


CHANNEL_KEY = _secret("sk-chan")
REFUSED_KEY = _secret("sk-refused")  # a channel key the upstream does not take
UNREACHABLE_KEY = _secret("upstream-unreachable")  # not shaped like an API key: known by value only
NOTIFY_SECRET = _secret("notify-op")
METRICS_TOKEN = _secret("metrics")
COOKIE = _secret("cookie")
WRONG_KEY = "sk-" + secrets.token_urlsafe(36)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("sim"), CHANNEL_KEY).start()
    httpx.post(s.url + "/_sim/config", json={"mj_step_seconds": 0.05}, headers=s.headers).raise_for_status()
    yield s
    s.stop()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


def _post(url: str, key: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Cookie": f"session={COOKIE}; theme=dark"}
    return httpx.post(url, json=body, headers=headers, timeout=60, **kw)


def _traffic(gw: Gateway, sim: Simulator, hooks: HookReceiver) -> list[str]:
    """Everything a gateway serves, with known secrets; returns the secrets made on the way."""
    boot = gw.admin_key
    admin_user = _post(gw.url + "/api/admin/users", boot, {"username": "ops", "role": "admin", "usd": "0"})
    assert admin_user.status_code == 201, admin_user.text
    admin = _post(gw.url + "/api/admin/keys", boot, {"user_id": admin_user.json()["id"]}).json()["key"]
    user = _post(gw.url + "/api/admin/users", admin, {"username": "alice", "usd": "10"}).json()
    key = _post(gw.url + "/api/admin/keys", admin, {"user_id": user["id"]}).json()["key"]
    channels = [
        {"name": "good", "base_url": sim.url + "/v1", "key": CHANNEL_KEY, "models": ["gpt-4o-mini", "dall-e-3"]},
        {"name": "refused", "base_url": sim.url + "/v1", "key": REFUSED_KEY, "models": ["gpt-4o"]},
        {"name": "gone", "base_url": f"http://127.0.0.1:{free_port()}/v1", "key": UNREACHABLE_KEY, "models": ["gpt-4.1-mini"]},
        {"name": "mj", "type": "midjourney-proxy", "base_url": sim.url + "/mj", "key": CHANNEL_KEY, "models": ["mj_imagine"]},
    ]  # fmt: skip
    for channel in channels:
        created = _post(gw.url + "/api/admin/channels", admin, channel)
        assert created.status_code == 201, created.text
        assert channel["key"] not in created.text
    listed = httpx.get(gw.url + "/api/admin/channels", headers={"Authorization": f"Bearer {admin}"})
    assert CHANNEL_KEY not in listed.text and REFUSED_KEY not in listed.text
    hook_secret = httpx.get(gw.url + "/api/user/hook-secret", headers={"Authorization": f"Bearer {key}"})
    assert hook_secret.status_code == 200, hook_secret.text
    signing = str(next(v for v in hook_secret.json().values() if isinstance(v, str) and len(v) >= 16))
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    wait_until(lambda: _post(gw.api + "/chat/completions", key, chat).status_code == 200)
    assert _post(gw.api + "/chat/completions", key, {**chat, "stream": True}).status_code == 200
    image = _post(gw.api + "/images/generations", key, {"model": "dall-e-3", "prompt": "a cat"})
    assert image.status_code == 200, image.text
    # Upstreams that fail: one refuses the channel's key (the channel is disabled), one is not there.
    assert _post(gw.api + "/chat/completions", key, {**chat, "model": "gpt-4o"}).status_code >= 500
    assert _post(gw.api + "/chat/completions", key, {**chat, "model": "gpt-4.1-mini"}).status_code >= 500
    # A key that is not one, sent as a bearer token and in the MJ client's own header.
    assert _post(gw.api + "/chat/completions", WRONG_KEY, chat).status_code == 401
    assert (
        httpx.post(
            gw.url + "/mj/submit/imagine", json={"prompt": "x"}, headers={"mj-api-secret": WRONG_KEY}
        ).status_code
        == 401
    )
    # MJ: one task calls the client's hook (signed with the user's hook secret), one the operator's.
    with Mj(gw, ("alice", key)) as mj:
        mj.done("imagine", prompt="a signed cat", notifyHook=hooks.url(path="/client"))
        mj.done("imagine", prompt="an operator's cat")
    wait_until(lambda: {c.path for c in hooks.calls} >= {"/client", "/operator"}, 20)
    # The admin API and the metrics with their keys, and with a cookie.
    assert (
        httpx.get(
            gw.url + "/api/admin/users", headers={"Authorization": f"Bearer {admin}", "Cookie": f"s={COOKIE}"}
        ).status_code
        == 200
    )
    assert (
        httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code
        == 200
    )
    assert (
        httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"}).status_code
        == 401
    )
    disabled = wait_until(
        lambda: [
            c
            for c in httpx.get(
                gw.url + "/api/admin/channels", headers={"Authorization": f"Bearer {admin}"}
            ).json()["data"]
            if c["name"] == "refused" and not c["enabled"]
        ]
    )
    assert disabled
    return [admin, key, signing]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_in_any_output_or_file(
    tmp_path: Path, sim: Simulator, hooks: HookReceiver, fmt: str
) -> None:
    gw = Gateway(
        tmp_path / "gw",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_LOG_LEVEL="debug",
        AITRE_LOG_FORMAT=fmt,
        AITRE_ACCESS_LOG="true",
        AITRE_METRICS_TOKEN=METRICS_TOKEN,
        AITRE_TASK_NOTIFY_HOOK=hooks.url(path="/operator"),
        AITRE_TASK_NOTIFY_SECRET=NOTIFY_SECRET,
        AITRE_FETCH_ALLOWED_CIDRS="127.0.0.0/8",
        AITRE_RETRIES="0",
        **FAST,
    ).start()
    try:
        made = _traffic(gw, sim, hooks)
    finally:
        gw.stop()
    assert all(
        "x-aitre-signature" in c.headers or any("signature" in h for h in c.headers) for c in hooks.calls
    )
    known = [
        CHANNEL_KEY,
        REFUSED_KEY,
        UNREACHABLE_KEY,
        NOTIFY_SECRET,
        METRICS_TOKEN,
        COOKIE,
        WRONG_KEY,
        *made,
    ]
    output = gw.proc.log()
    assert "aitre.access" in output and len(output) > 5000  # it did log, and a lot (debug)
    if fmt == "json":
        assert sum(1 for _ in json_lines(output)) > 20
    for secret in known:
        assert secret not in output, f"{secret[:12]}… is in the gateway's output"
    files = [p for p in gw.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "aitre.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in known:
            assert secret.encode() not in data, f"{secret[:12]}… is in {path.relative_to(gw.data_dir)}"
    time.sleep(0)
