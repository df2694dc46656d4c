"""Helpers for the midjourney-proxy tests: submit, poll a task to its end, read the pictures,
and a small HTTP server that records notifyHook callbacks."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import orjson
from PIL import Image

from tests.simulator.media import png_bytes

STEP = 0.05  # seconds per step while these tests run (5 steps: a task takes 0.25 s)
DONE = ("SUCCESS", "FAILURE")


def data_url(size: tuple[int, int] = (64, 64), colour: tuple[int, int, int, int] = (200, 40, 40, 255)) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(size, colour)).decode()


def array_url(rgb: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def submit(http: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    r = http.post(f"/mj/submit/{path}", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def fetch(http: httpx.Client, task_id: str) -> dict[str, Any]:
    r = http.get(f"/mj/task/{task_id}/fetch")
    assert r.status_code == 200, r.text
    task: dict[str, Any] = r.json()
    return task


def run(
    http: httpx.Client, task_id: str, timeout: float = 10.0
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Poll until the task ends: its last state and every (status, progress) seen on the way."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = fetch(http, task_id)
        if not seen or seen[-1] != (task["status"], task["progress"]):
            seen.append((task["status"], task["progress"]))
        if task["status"] in DONE:
            return task, seen
        time.sleep(STEP / 3)
    raise AssertionError(f"task {task_id} did not end: {seen}")


def done(http: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    """Submit, expect code 1, and return the finished task."""
    answer = submit(http, path, **body)
    assert answer["code"] == 1, answer
    task, _ = run(http, answer["result"])
    assert task["status"] == "SUCCESS", task
    return task


def act(http: httpx.Client, task: dict[str, Any], label: str) -> dict[str, Any]:
    """Press the button with this label (or emoji) of a finished task; the submit answer."""
    (button,) = [b for b in task["buttons"] if label in (b["label"], b["emoji"])]
    return submit(http, "action", taskId=task["id"], customId=button["customId"])


def pressed(http: httpx.Client, task: dict[str, Any], label: str) -> dict[str, Any]:
    answer = act(http, task, label)
    assert answer["code"] == 1, answer
    result, _ = run(http, answer["result"])
    assert result["status"] == "SUCCESS", result
    return result


def picture(url: str) -> Image.Image:
    r = httpx.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    assert img.format == "PNG"
    return img.convert("RGB")


def pixels(img: Image.Image) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.asarray(img, dtype=np.int16)


def quadrants(img: Image.Image) -> list[Image.Image]:
    w, h = img.width // 2, img.height // 2
    return [img.crop((i % 2 * w, i // 2 * h, i % 2 * w + w, i // 2 * h + h)) for i in range(4)]


class Hooks:
    """Records the JSON POSTed to `/<name>`."""

    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self.server = server
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def got(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls.get(name, []))


@contextmanager
def hook_server() -> Iterator[Hooks]:
    hooks: Hooks

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            assert self.headers["content-type"] == "application/json"
            with hooks.lock:
                hooks.calls.setdefault(self.path.strip("/"), []).append(orjson.loads(body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks = Hooks(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
