"""What a client learns when an upstream fails: why its own request was refused (a parameter out
of range), never where the upstream is (hosts, ports), what the operator's account or key is
(quota, organisation, key fragments), nor an error page or a stack trace. The operator finds
the whole story in the usage log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.processes import Gateway, channel_spec, free_port

_HTML = b"<html><head><title>400 Bad Request</title></head><body><center>nginx/1.18.0 at 10.0.3.7</center></body></html>"
_TRACE = "Traceback (most recent call last):\n  File \"/srv/relay/app.py\", line 12, in handle\nKeyError: 'x'"


def _openai_error(message: str, **rest: Any) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", **rest}}).encode()


# path prefix -> (status, content type, body) the canned upstream answers with
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "param": (
        400,
        "application/json",
        _openai_error(
            "Invalid value for 'temperature': 3 is greater than the maximum of 2.",
            param="temperature",
            code="invalid_value",
        ),
    ),
    "html": (400, "text/html", _HTML),
    "trace": (422, "application/json", json.dumps({"detail": _TRACE}).encode()),
    "keyleak": (400, "application/json", _openai_error("Project proj_42 cannot use key sk-live-abc123xyz.")),
    "hostleak": (404, "application/json", _openai_error("No route to backend gpu-7.internal:8000/v1.")),
    "quota": (
        429,
        "application/json",
        _openai_error("Rate limit reached for gpt-4o in organization org-SECRET42 on tokens per min."),
    ),
    "auth": (401, "application/json", _openai_error("Incorrect API key provided: sk-abc***xyz.")),
    "boom": (500, "text/plain", b"Internal Server Error\n" + _TRACE.encode()),
}


class _Canned(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, ctype, body = ANSWERS[self.path.strip("/").split("/")[0]]
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


REFUSED_PORT = free_port()


@pytest.fixture(scope="module")
def gw(canned: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("errdetail"), AITRE_SIMULATOR_ENABLED="false", AITRE_RETRIES="0")
    channels = [channel_spec(f"ch-{name}", f"{canned}/{name}/v1", f"m-{name}") for name in ANSWERS]
    channels.append(channel_spec("ch-refused", f"http://127.0.0.1:{REFUSED_PORT}/v1", "m-refused"))
    g.apply({"prices": {"*": {"per_call": "0.001"}}, "channels": channels})
    g.start()
    yield g
    g.stop()


def _chat(gw: Gateway, model: str) -> httpx.Response:
    return httpx.post(
        gw.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.user_key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "temperature": 3},
        timeout=30,
    )


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _attempt_errors(gw: Gateway, resp: httpx.Response) -> str:
    row = gw.wait_log(resp.headers["x-request-id"])
    return row["error"] + " | " + " ".join(a["error"] for a in json.loads(row["attempts"]))


def test_a_refusal_of_the_clients_own_parameters_is_passed_on(gw: Gateway) -> None:
    resp = _chat(gw, "m-param")
    err = _error(resp, 400)
    assert err["message"] == "Invalid value for 'temperature': 3 is greater than the maximum of 2."
    assert (err["type"], err["param"], err["code"]) == (
        "invalid_request_error",
        "temperature",
        "invalid_value",
    )
    assert resp.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("name", "status", "hidden"),
    [
        ("html", 400, ["nginx", "10.0.3.7", "<html"]),
        ("trace", 422, ["Traceback", "/srv/relay", "KeyError"]),
        ("keyleak", 400, ["sk-live", "proj_42"]),
        ("hostleak", 404, ["gpu-7", "8000"]),
    ],
)
def test_refusals_that_would_leak_get_a_generic_message(
    gw: Gateway, name: str, status: int, hidden: list[str]
) -> None:
    resp = _chat(gw, f"m-{name}")
    err = _error(resp, status)
    assert err["message"] == f"The upstream refused the request (HTTP {status})."
    assert err["code"] == "upstream_rejected"
    for word in hidden:
        assert word not in resp.text
    # ... while the operator sees what the upstream said.
    assert hidden[0] in _attempt_errors(gw, resp)


def test_quota_and_rate_limit_details_of_the_operators_account_stay_hidden(gw: Gateway) -> None:
    resp = _chat(gw, "m-quota")
    err = _error(resp, 429)
    assert err["code"] == "rate_limit_exceeded"
    assert "org-SECRET42" not in resp.text and "gpt-4o" not in resp.text
    assert "org-SECRET42" in _attempt_errors(gw, resp)


def test_a_refused_channel_key_is_not_the_clients_fault_and_not_shown(gw: Gateway) -> None:
    resp = _chat(gw, "m-auth")
    err = _error(resp, 502)
    assert err["code"] == "upstream_auth_failed"
    assert "sk-abc" not in resp.text
    assert "sk-abc***xyz" in _attempt_errors(gw, resp)


def test_an_upstream_crash_shows_no_page_or_trace(gw: Gateway) -> None:
    resp = _chat(gw, "m-boom")
    err = _error(resp, 502)
    assert err["message"] == "The upstream failed (HTTP 500)."
    assert "Traceback" not in resp.text and "/srv/relay" not in resp.text
    assert "Traceback" in _attempt_errors(gw, resp)


@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_upstream_is_not_located_for_the_client(gw: Gateway, stream: bool) -> None:
    resp = httpx.post(
        gw.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.user_key}"},
        json={"model": "m-refused", "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        timeout=30,
    )
    err = _error(resp, 502)
    assert err["code"] == "upstream_unreachable"
    assert "127.0.0.1" not in resp.text and str(REFUSED_PORT) not in resp.text
    assert f"127.0.0.1:{REFUSED_PORT}" in _attempt_errors(gw, resp)
