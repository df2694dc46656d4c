"""JSON log lines, the access line of each request, and request ids given by clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mj.kit import new_user
from tests.observe.kit import Recording, json_lines
from tests.support.processes import Gateway, wait_until

ACCESS_FIELDS = {
    "time", "level", "logger", "message", "method", "path", "status", "latency_ms", "overhead_ms",
    "request_id", "route", "model", "channel", "stream", "prompt_tokens", "completion_tokens", "cost",
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[Recording]:
    r = Recording()
    yield r
    r.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Recording) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("gw"),
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_LOG_FORMAT="json",
        AITRE_LOG_LEVEL="info",
        AITRE_ACCESS_LOG="true",
    ).start()
    g.cli(
        "channel",
        "add",
        "rec",
        "--base-url",
        upstream.url + "/v1",
        "--models",
        "gpt-4o-mini",
        "--key",
        "sk-rec",
    )
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    _, k = new_user(gw, "10")
    wait_until(lambda: gw.chat(k).status_code == 200)
    return k


def _chat(gw: Gateway, key: str, request_id: str | bytes | None = None) -> httpx.Response:
    headers: dict[str, Any] = {"Authorization": f"Bearer {key}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(gw.api + "/chat/completions", json=body, headers=headers, timeout=30)


def _access_line(gw: Gateway, request_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        lines = [r for r in json_lines(gw.proc.log()) if r.get("request_id") == request_id]
        return lines[-1] if lines else None

    line: dict[str, Any] = wait_until(find, 10)
    return line


def _by_client_id(gw: Gateway, given: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = wait_until(
        lambda: [r for r in json_lines(gw.proc.log()) if r.get("client_request_id") == given], 10
    )
    return found


def test_every_log_line_is_json_and_access_lines_carry_the_request(
    gw: Gateway, key: str, upstream: Recording
) -> None:
    resp = _chat(gw, key)
    assert resp.status_code == 200
    rid = resp.headers["x-request-id"]
    assert rid.startswith("req_") and float(resp.headers["x-aitre-overhead-ms"]) >= 0
    line = _access_line(gw, rid)
    assert set(line) >= ACCESS_FIELDS, ACCESS_FIELDS - set(line)
    row = gw.wait_log(rid)
    assert line["logger"] == "aitre.access" and line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/chat/completions", 200)
    assert (line["route"], line["model"], line["channel"]) == (
        "chat.completions",
        "gpt-4o-mini",
        row["channel_id"],
    )
    assert (line["prompt_tokens"], line["completion_tokens"]) == (3, 1)
    assert line["cost"] == row["quota"] > 0
    assert 0 <= line["overhead_ms"] <= line["latency_ms"]
    # Refusals have lines too, without a model.
    refused = httpx.post(gw.api + "/chat/completions", json={}, headers={"Authorization": "Bearer sk-nope"})
    assert refused.status_code == 401
    line = _access_line(gw, refused.headers["x-request-id"])
    assert line["status"] == 401 and "model" not in line
    # After start-up, the process writes nothing but JSON records (the CLI's banner comes before).
    out = gw.proc.log().splitlines()
    start = next(i for i, text in enumerate(out) if text.startswith("{"))
    assert all(text.startswith("{") for text in out[start:] if text.strip()), out[start:]
    assert len(list(json_lines(gw.proc.log()))) >= 5


def test_a_client_request_id_goes_upstream_and_comes_back(gw: Gateway, key: str, upstream: Recording) -> None:
    for given in ("trace-abc.123:x", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "A" * 128):
        resp = _chat(gw, key, given)
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] == given
        assert upstream.seen[-1][1]["x-request-id"] == given
        line = _by_client_id(gw, given)[-1]
        assert line["request_id"].startswith("req_")
        # The books stay keyed by the gateway's own id: a client may send one id twice.
        assert gw.wait_log(line["request_id"])["status_code"] == 200
    twice = [_chat(gw, key, "same-id") for _ in range(2)]
    assert [r.status_code for r in twice] == [200, 200]
    ours = wait_until(
        lambda: (
            {r["request_id"] for r in _by_client_id(gw, "same-id")}
            if len(_by_client_id(gw, "same-id")) == 2
            else None
        )
    )
    assert len(ours) == 2


@pytest.mark.parametrize(
    "hostile",
    [
        "A" * 129,
        "has space",
        'quote"d',
        "<script>alert(1)</script>",
        "semi;colon",
        "../../etc/passwd",
        "",
        b"caf\xc3\xa9",
        b"\xff\xfe",
        "sk-" + "a" * 40 + "\tx",
    ],
)
def test_a_hostile_request_id_is_replaced_not_refused(
    gw: Gateway, key: str, upstream: Recording, hostile: str | bytes
) -> None:
    resp = _chat(gw, key, hostile)
    assert resp.status_code == 200
    rid = resp.headers["x-request-id"]
    assert rid.startswith("req_") and rid != hostile
    assert upstream.seen[-1][1]["x-request-id"] == rid
    line = _access_line(gw, rid)
    assert "client_request_id" not in line


def test_text_lines(tmp_path: Path, upstream: Recording) -> None:
    gw = Gateway(
        tmp_path, AITRE_SIMULATOR_ENABLED="false", AITRE_LOG_LEVEL="info", AITRE_ACCESS_LOG="true"
    ).start()
    try:
        gw.cli("channel", "add", "rec", "--base-url", upstream.url + "/v1", "--models", "gpt-4o-mini")
        _, k = new_user(gw, "1")
        resp = wait_until(lambda: (r := _chat(gw, k, "text-trace")).status_code == 200 and r)
        wait_until(lambda: "client_request_id=text-trace" in gw.proc.log())
        line = next(text for text in gw.proc.log().splitlines() if "client_request_id=text-trace" in text)
        assert " INFO aitre.access: POST /v1/chat/completions 200 " in line
        assert "request_id=req_" in line and float(resp.headers["x-aitre-overhead-ms"]) >= 0
        assert "model=gpt-4o-mini" in line and "cost=" in line
    finally:
        gw.stop()
