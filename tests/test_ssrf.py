"""URLs the gateway fetches for a client (reference images) are checked: public http(s) only,
every redirect too. A helper server on 127.0.0.5 is allowed (AITRE_FETCH_ALLOWED_CIDRS) so that
a redirect from an allowed host to a forbidden one can be shown."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.support.processes import Gateway, free_port

ALLOWED_HOST = "127.0.0.5"


class _Handler(http.server.BaseHTTPRequestHandler):
    png = b""
    forbidden_target = ""

    def do_GET(self) -> None:
        if self.path == "/ref.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.png)))
            self.end_headers()
            self.wfile.write(self.png)
        elif self.path.startswith("/redirect"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ref_server() -> Iterator[str]:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(buf, "PNG")
    _Handler.png = buf.getvalue()
    port = free_port()
    server = http.server.ThreadingHTTPServer((ALLOWED_HOST, port), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{ALLOWED_HOST}:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("ssrf"), AITRE_FETCH_ALLOWED_CIDRS=f"{ALLOWED_HOST}/32").start()
    yield g
    g.stop()


def _ask(gw: Gateway, url: str) -> httpx.Response:
    return httpx.post(
        gw.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.user_key}"},
        json={
            "model": "gpt-4o-image",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "redraw"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        },
        timeout=60,
    )


def test_allowed_reference_url_is_fetched(gw: Gateway, ref_server: str) -> None:
    r = _ask(gw, ref_server + "/ref.png")
    assert r.status_code == 200, r.text
    assert "/media/" in r.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{gw_port}/healthz",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://[::1]:{gw_port}/healthz",
        "http://localhost:{gw_port}/healthz",
        "http://0.0.0.0:{gw_port}/healthz",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
    ],
)
def test_private_and_odd_urls_are_refused(gw: Gateway, url: str) -> None:
    r = _ask(gw, url.format(gw_port=gw.port))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_url" and err["param"] == "messages"


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:{gw_port}/healthz", "http://169.254.169.254/", "http://10.0.0.1/"]
)
def test_redirect_to_a_private_address_is_refused(gw: Gateway, ref_server: str, target: str) -> None:
    r = _ask(gw, f"{ref_server}/redirect?to={target.format(gw_port=gw.port)}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_url"


def test_a_non_image_reference_is_refused(gw: Gateway) -> None:
    r = _ask(gw, "data:text/plain;base64,aGVsbG8=")
    assert r.status_code == 400
