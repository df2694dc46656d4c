"""The simulator is never open: every route needs its key, the control routes (`/_sim/...`)
too, and their bodies are bounded; the one mounted in the gateway refuses everything once no
simulator channel (no key) is left; `aitre simulator` without a key makes one and prints it."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import (
    SIM_KEY,
    Gateway,
    Proc,
    Simulator,
    aitre_cmd,
    base_env,
    free_port,
    wait_until,
)

CONTROL = [
    ("GET", "/_sim/events", None),
    ("POST", "/_sim/faults", [{"spec": "status=418", "path": "/v1/models", "times": 1}]),
    ("PUT", "/_sim/faults", [{"spec": "status=418", "path": "/v1/models", "times": 1}]),
    ("DELETE", "/_sim/faults", None),
    ("POST", "/_sim/config", {"pending_polls": 2}),
]
NOT_THE_KEY = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {SIM_KEY}x"},
    {"x-key": "wrong"},
]


def _refused(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("headers", NOT_THE_KEY)
@pytest.mark.parametrize(("method", "path", "body"), CONTROL)
def test_control_routes_need_the_key(
    simulator: Simulator, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    _refused(httpx.request(method, simulator.url + path, json=body, headers=headers))
    # The refused rule was not set: the models route still answers.
    assert httpx.get(simulator.url + "/v1/models", headers=simulator.headers).status_code == 200


def test_control_routes_work_with_the_key(simulator: Simulator) -> None:
    for method, path, body in CONTROL:
        if path != "/_sim/faults" or method == "DELETE":  # no fault left behind for other tests
            resp = httpx.request(method, simulator.url + path, json=body, headers=simulator.headers)
            assert resp.status_code == 200, (method, path, resp.text)


@pytest.mark.parametrize("path", ["/_sim/faults", "/_sim/config"])
def test_control_bodies_are_bounded(simulator: Simulator, path: str) -> None:
    big = b"[" + b" " * 200_000 + b"]"
    for content in (big, iter([big[:100_000], big[100_000:]])):  # declared length, then chunked
        resp = httpx.post(simulator.url + path, content=content, headers=simulator.headers)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("key", "status"), [("", b"401"), (SIM_KEY, b"413")])
def test_a_huge_declared_body_is_answered_before_it_is_sent(
    simulator: Simulator, key: str, status: bytes
) -> None:
    """300 MB announced, none sent: the answer comes at once (the body is never waited for)."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = f"POST /_sim/faults HTTP/1.1\r\nHost: sim\r\n{auth}Content-Length: 314572800\r\n\r\n"
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as sock:
        sock.sendall(head.encode())
        assert sock.recv(4096).split(b" ", 2)[1] == status


def test_files_are_served_by_their_unguessable_name(simulator: Simulator, sdk: openai.OpenAI) -> None:
    """The links the simulator hands out work without a key, like OpenAI's signed links."""
    url = sdk.images.generate(model="dall-e-2", prompt="x", size="256x256", response_format="url").data[0].url
    assert url and re.search(r"/files/[0-9a-f]{32}\.png$", url)
    assert httpx.get(url).status_code == 200
    assert httpx.get(simulator.url + "/files/" + "0" * 32 + ".png").status_code == 404


def test_the_simulator_without_a_key_makes_one(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(aitre_cmd("simulator", "--port", str(port)), base_env(), tmp_path, "simulator")
    url = f"http://127.0.0.1:{port}"
    proc.start(url + "/v1/models")
    try:
        match = wait_until(lambda: re.search(r"key: (sk-sim-\S+)", proc.log()), timeout=10)
        key = match.group(1)
        assert len(key) >= 30
        _refused(httpx.get(url + "/v1/models"))
        _refused(httpx.get(url + "/_sim/events"))
        assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        proc.stop()


def test_mounted_simulator_needs_its_channel_key_and_fails_closed(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway().start()
    sim = gw.url + "/sim"
    for headers in (
        {},
        {"Authorization": f"Bearer {gw.user_key}"},
        {"Authorization": f"Bearer {gw.admin_key}"},
    ):
        _refused(httpx.get(sim + "/_sim/events", headers=headers))
        _refused(httpx.post(sim + "/_sim/faults", json=[{"spec": "hang"}], headers=headers))
        _refused(httpx.get(sim + "/v1/models", headers=headers))
    assert gw.chat(gw.user_key).status_code == 200  # no fault was set

    key = "sk-sim-channel-key-for-this-test"
    gw.cli("channel", "update", "simulator", "--key", key)
    mine = {"Authorization": f"Bearer {key}"}
    wait_until(lambda: httpx.get(sim + "/_sim/events", headers=mine).status_code == 200, timeout=10)
    image = httpx.post(
        sim + "/v1/images/generations",
        json={"model": "dall-e-2", "prompt": "x", "size": "256x256", "response_format": "url"},
        headers=mine,
        timeout=30,
    )
    file_url = image.json()["data"][0]["url"]
    assert httpx.get(file_url).status_code == 200

    # No simulator channel, no key: everything is refused, with or without the old key.
    gw.cli("channel", "delete", "simulator")
    wait_until(lambda: httpx.get(sim + "/v1/models", headers=mine).status_code == 401, timeout=10)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({}, mine, {"x-key": key}):
        _refused(httpx.post(sim + "/v1/chat/completions", json=chat, headers=headers))
        _refused(httpx.get(sim + "/_sim/events", headers=headers))
        _refused(httpx.get(file_url, headers=headers))
        assert (
            httpx.post(sim + "/v1/flux-dev", json={"prompt": "x"}, headers={"x-key": ""}).status_code == 401
        )
