"""Helpers for the engine's tests: the stub upstream process, a gateway that runs the stub kind,
a notifyHook receiver, and calls to the stub kind's routes."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Gateway, Proc, base_env, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "failed", "cancelled")

# Fast clocks: tests watch whole task lives in seconds.
FAST = {
    "AITRE_TASK_PLUGINS": "tests.tasks.stubkit:register",
    "PYTHONPATH": str(ROOT),
    "AITRE_TASK_POLL_MIN_SECONDS": "0.1",
    "AITRE_TASK_POLL_MAX_SECONDS": "0.5",
    "AITRE_TASK_LEASE_SECONDS": "3",
    "AITRE_TASK_IDLE_CHECK_SECONDS": "0.5",
    "AITRE_NOTIFY_BACKOFF_SECONDS": "0.2",
    "AITRE_NOTIFY_TIMEOUT": "2",
}


class StubUpstream:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "tests.tasks.stub_upstream", "--port", str(self.port)]
        self.proc = Proc(args, base_env(PYTHONPATH=str(ROOT)), workdir, "stub-upstream")

    def start(self) -> StubUpstream:
        self.proc.start(self.url + "/_stats")
        return self

    def stop(self) -> None:
        self.proc.stop()

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/_stats").json()
        return data

    def control(self, **values: Any) -> None:
        httpx.post(self.url + "/_control", json=values).raise_for_status()


def stub_channel(
    upstream: StubUpstream, name: str = "stub", model: str = "stub-model", **config: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "type": "openai", "base_url": upstream.url, "models": [model]}
    if config:
        spec["config"] = config
    return spec


def start_gateway(gw: Gateway, upstream: StubUpstream) -> Gateway:
    """With two stub channels: `stub-model` (looks submits up) and `stub-nolookup` (cannot)."""
    channels = [stub_channel(upstream), stub_channel(upstream, "nolookup", "stub-nolookup", no_lookup=True)]
    gw.apply({"channels": channels})
    return gw.start()


def submit(gw: Gateway, key: str | None = None, **body: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/stub/submit",
        json=body,
        headers={"Authorization": f"Bearer {key or gw.user_key}"},
        timeout=30,
    )


def submit_ok(gw: Gateway, key: str | None = None, **body: Any) -> str:
    resp = submit(gw, key, **body)
    assert resp.status_code == 200, resp.text
    task_id: str = resp.json()["id"]
    return task_id


def task(gw: Gateway, task_id: str, key: str | None = None) -> dict[str, Any]:
    resp = httpx.get(
        gw.url + "/stub/task",
        params={"id": task_id},
        headers={"Authorization": f"Bearer {key or gw.user_key}"},
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def wait_final(gw: Gateway, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(lambda: (t := task(gw, task_id))["status"] in FINAL and t, timeout)
    return found


def wait_billed(gw: Gateway, task_id: str, timeout: float = 20.0) -> Any:
    return wait_until(
        lambda: gw.sql("SELECT * FROM tasks WHERE id = ? AND billed_at IS NOT NULL", (task_id,)), timeout
    )[0]


def balance(gw: Gateway, key: str | None = None) -> int:
    resp = httpx.get(gw.url + "/api/user/balance", headers={"Authorization": f"Bearer {key or gw.user_key}"})
    assert resp.status_code == 200, resp.text
    value: int = resp.json()["quota"]
    return value


def admin(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, gw.url + path, headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=30, **kw
    )


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HookReceiver:
    """A notifyHook receiver on 127.0.0.1: records every call; `answers` (popped in order) are
    the statuses it gives, then 200."""

    answers: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    on_call: Callable[[Call], None] | None = None

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                call = Call(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(size))
                with lock:
                    receiver.calls.append(call)
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
