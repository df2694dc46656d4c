"""Links in an upstream's answer (image-by-chat in chat mode, image URLs from an images API) are
fetched with the same address policy as a client's URLs: a user who gets a model to answer
`![x](http://127.0.0.1:PORT/...)` must not have the gateway fetch an internal address and serve
it under `/media/`. Only the channel's own configured origin is trusted.

A stub upstream on 127.0.0.1 answers with whatever link the prompt names; a "canary" server,
also on 127.0.0.1 but another port, stands for an internal service and counts its visitors; a
helper on 127.0.0.5 is allowed (AITRE_FETCH_ALLOWED_CIDRS) and can redirect."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from PIL import Image

from tests.support.processes import Gateway, free_port

ALLOWED_HOST = "127.0.0.5"
CHAT_MODEL = "gemini-2.5-flash-image"
IMAGE_MODEL = "dall-e-3"
FLUX_MODEL = "flux-dev"


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Servers:
    upstream: str
    canary: str
    allowed: str
    canary_hits: list[str] = field(default_factory=list)


def _serve(
    host: str, handler: type[http.server.BaseHTTPRequestHandler]
) -> tuple[str, http.server.HTTPServer]:
    port = free_port()
    server = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{host}:{port}", server


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def send_body(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    hits: list[str] = []
    secret, public, own = _png((255, 0, 0)), _png((0, 255, 0)), _png((0, 0, 255))

    class Canary(_Quiet):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_body(200, secret, "image/png")

    class Allowed(_Quiet):
        def do_GET(self) -> None:
            if self.path.startswith("/redirect?to="):
                self.send_body(302, b"", "text/plain", {"Location": self.path.split("=", 1)[1]})
            else:
                self.send_body(200, public, "image/png")

    flux_links: dict[str, str] = {}

    class Upstream(_Quiet):
        """An OpenAI-compatible and BFL upstream that links to the URL after `LINK ` in the prompt."""

        def do_GET(self) -> None:
            if self.path.startswith("/v1/get_result?id="):
                link = flux_links[self.path.split("=", 1)[1]]
                ready = {"status": "Ready", "result": {"sample": link}}
                self.send_body(200, json.dumps(ready).encode(), "application/json")
            else:
                self.send_body(200, own, "image/png")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == f"/v1/{FLUX_MODEL}":
                task = f"t{len(flux_links)}"
                flux_links[task] = body["prompt"].split("LINK ", 1)[1]
                host = self.headers["Host"]
                answer = {"id": task, "polling_url": f"http://{host}/v1/get_result?id={task}"}
            elif self.path.endswith("/images/generations"):
                link = body["prompt"].split("LINK ", 1)[1]
                answer = {"created": 1, "data": [{"url": link}]}
            else:
                prompt = body["messages"][-1]["content"]
                link = prompt.split("LINK ", 1)[1]
                message: dict[str, object] = {"role": "assistant", "content": f"Here it is.\n\n![x]({link})"}
                if prompt.startswith("IMAGES"):  # OpenRouter's shape: the link in message.images only
                    message = {"role": "assistant", "content": "", "images": [{"image_url": {"url": link}}]}
                answer = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
            self.send_body(200, json.dumps(answer).encode(), "application/json")

    up_url, up = _serve("127.0.0.1", Upstream)
    canary_url, canary = _serve("127.0.0.1", Canary)
    allowed_url, allowed = _serve(ALLOWED_HOST, Allowed)
    yield Servers(up_url, canary_url, allowed_url, hits)
    for server in (up, canary, allowed):
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gw(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        tmp_path_factory.mktemp("links"),
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_FETCH_ALLOWED_CIDRS=f"{ALLOWED_HOST}/32",
    )
    channel = {
        "name": "stub",
        "type": "openai",
        "base_url": servers.upstream + "/v1",
        "key": "sk-stub-upstream",
        "models": [CHAT_MODEL, IMAGE_MODEL],
        "config": {"image_chat_via": "chat"},
    }
    flux = {
        "name": "stub-bfl",
        "type": "bfl",
        "base_url": servers.upstream,
        "key": "stub-bfl-key",
        "models": [FLUX_MODEL],
        "config": {"poll_interval": 0.05},
    }
    g.apply({"channels": [channel, flux]})
    g.start()
    yield g
    g.stop()


def _chat(gw: Gateway, prompt: str) -> httpx.Response:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": prompt}]}
    return httpx.post(gw.api + "/chat/completions", json=body, headers=_auth(gw), timeout=60)


def _image(gw: Gateway, prompt: str, model: str = IMAGE_MODEL) -> httpx.Response:
    body = {"model": model, "prompt": prompt, "response_format": "url"}
    return httpx.post(gw.api + "/images/generations", json=body, headers=_auth(gw), timeout=60)


def _auth(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.user_key}"}


def _refused(resp: httpx.Response, servers: Servers) -> None:
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "upstream_bad_url" and error["type"] == "upstream_error"
    assert "/media/" not in resp.text
    time.sleep(0.2)
    assert servers.canary_hits == []


def _internal(servers: Servers) -> list[str]:
    port = servers.canary.rsplit(":", 1)[1]
    return [
        f"{servers.canary}/secret.png",
        f"http://localhost:{port}/secret.png",
        f"http://[::ffff:127.0.0.1]:{port}/secret.png",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        f"{servers.allowed}/redirect?to={servers.canary}/secret.png",
        f"{servers.allowed}/redirect?to=http://169.254.169.254/latest/meta-data/",
    ]


def test_chat_answer_links_to_internal_addresses_are_refused(gw: Gateway, servers: Servers) -> None:
    for link in _internal(servers):
        _refused(_chat(gw, f"draw LINK {link}"), servers)
    _refused(_chat(gw, f"IMAGES LINK {servers.canary}/secret.png"), servers)


@pytest.mark.parametrize("model", [IMAGE_MODEL, FLUX_MODEL])
def test_images_api_urls_to_internal_addresses_are_refused(gw: Gateway, servers: Servers, model: str) -> None:
    for link in _internal(servers):
        _refused(_image(gw, f"draw LINK {link}", model), servers)


def test_public_links_and_the_channels_own_origin_are_fetched(gw: Gateway, servers: Servers) -> None:
    """The same paths work for an address the policy permits, and for the channel's own host."""
    for link, color in (
        (f"{servers.allowed}/ok.png", (0, 255, 0)),
        (f"{servers.upstream}/own.png", (0, 0, 255)),
    ):
        chat = _chat(gw, f"draw LINK {link}")
        assert chat.status_code == 200, chat.text
        media = chat.json()["choices"][0]["message"]["content"].split("](", 1)[1].rstrip(")")
        assert media.startswith(gw.url + "/media/")
        assert Image.open(io.BytesIO(httpx.get(media).content)).getpixel((0, 0)) == color
        for model in (IMAGE_MODEL, FLUX_MODEL):
            image = _image(gw, f"draw LINK {link}", model)
            assert image.status_code == 200, image.text
            assert image.json()["data"][0]["url"].startswith(gw.url + "/media/")
    assert servers.canary_hits == []
