"""Bad requests get OpenAI-format errors with the right status; never a stack trace."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.processes import Gateway


def post(
    gw: Gateway, content: bytes, key: str | None = "user", headers: dict[str, str] | None = None
) -> httpx.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    if key == "user":
        h["Authorization"] = f"Bearer {gw.user_key}"
    elif key:
        h["Authorization"] = key
    return httpx.post(gw.api + "/chat/completions", content=content, headers=h, timeout=10)


def check(resp: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    if param is not None:
        assert body["error"]["param"] == param
    assert resp.headers.get("x-request-id", "").startswith("req_")
    assert "Traceback" not in resp.text


def test_malformed_json_is_400(gateway: Gateway) -> None:
    check(post(gateway, b'{"model": "gpt-4o-mini", "messages": ['), 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
    ],
)
def test_invalid_bodies_are_400(gateway: Gateway, body: bytes, param: str | None) -> None:
    check(post(gateway, body), 400, param=param)


@pytest.mark.parametrize("auth", [None, "Basic abc", "Bearer", "Bearer sk-wrong"])
def test_missing_or_bad_key_is_401(gateway: Gateway, auth: str | None) -> None:
    resp = post(
        gateway, b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}', key=auth
    )
    check(resp, 401)
    assert resp.headers.get("x-should-retry") == "false"


def test_unknown_route_and_wrong_method(gateway: Gateway) -> None:
    check(httpx.get(gateway.api + "/nope", timeout=5), 404, "not_found")
    check(httpx.get(gateway.api + "/chat/completions", timeout=5), 405)


def test_unknown_model_is_404_with_param(gateway: Gateway) -> None:
    check(
        post(gateway, b'{"model": "nope-1", "messages": [{"role": "user", "content": "x"}]}'),
        404,
        "model_not_found",
        "model",
    )


def test_body_too_large_is_413(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_MAX_BODY_BYTES="1000").start()
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 2000 + b'"}]}'
    check(post(gw, big), 413, "body_too_large")
    # Chunked upload without a Content-Length is bounded too.
    resp = httpx.post(
        gw.api + "/chat/completions",
        content=iter([big[:600], big[600:]]),
        headers={"Authorization": f"Bearer {gw.user_key}", "Content-Type": "application/json"},
        timeout=10,
    )
    check(resp, 413, "body_too_large")
    small = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    assert post(gw, small).status_code == 200


def test_health_endpoints(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/readyz").json() == {"status": "ready"}


def test_readyz_is_503_without_a_usable_channel(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_SIMULATOR_ENABLED="false").start()
    resp = httpx.get(gw.url + "/readyz")
    assert resp.status_code == 503
    assert "no enabled channel" in resp.json()["problems"]
