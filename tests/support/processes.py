"""Real processes for tests: the gateway (`aitre serve`) and the simulator (`aitre simulator`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-4000:]}")


def aitre_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aitre", *args]


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.log_path = cwd / f"{name}.log"
        self.args, self.env, self.cwd = args, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, health_url: str) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_http(health_url, self.proc, self.log_path)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITRE_")}
    env.update({"PYTHONUNBUFFERED": "1", "AITRE_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


# The keys of the simulators tests start, unless they choose others. `channel_spec` gives the
# first to every channel it describes, so channels pointed at a test simulator work; the second
# is there for tests that rotate a channel's key.
SIM_KEY = "sk-sim-test-key-0123456789abcd"
SIM_KEY_2 = "sk-sim-test-key-9876543210wxyz"


class Simulator:
    """An `aitre simulator` process; every request to it, control routes too, needs one of its
    keys (`key`, the first, is the one the helpers send)."""

    def __init__(self, workdir: Path, *keys: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        keys = keys or (SIM_KEY, SIM_KEY_2)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = keys[0]
        self.headers = {"Authorization": f"Bearer {self.key}"}
        # The keys in the environment, not the arguments: other users can read a process's arguments.
        args = aitre_cmd("simulator", "--port", str(self.port))
        self.proc = Proc(args, base_env(AITRE_SIMULATOR_KEY=",".join(keys)), workdir, "simulator")

    def start(self) -> Simulator:
        self.proc.start(self.url + "/_sim/events")
        return self

    def set_faults(self, *rules: dict[str, Any]) -> None:
        httpx.post(self.url + "/_sim/faults", json=list(rules), headers=self.headers).raise_for_status()

    def reset(self) -> None:
        httpx.delete(self.url + "/_sim/faults", headers=self.headers).raise_for_status()

    def events(self) -> list[dict[str, Any]]:
        resp = httpx.get(self.url + "/_sim/events", headers=self.headers)
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()
        return data

    def stop(self) -> None:
        self.proc.stop()


class Gateway:
    """An `aitre serve` process with its own data folder."""

    def __init__(self, workdir: Path, **env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        defaults = {"AITRE_CACHE_REFRESH_SECONDS": "0.2", "AITRE_FLUSH_SECONDS": "0.1"}
        self.env = base_env(
            AITRE_PORT=str(self.port), AITRE_DATA_DIR=str(self.data_dir), **{**defaults, **env}
        )
        self.proc = Proc(aitre_cmd("serve"), self.env, workdir, "gateway")
        self.admin_key = ""
        self.user_key = ""

    def start(self) -> Gateway:
        self.proc.start(self.url + "/healthz")
        keys = self.data_dir / "initial-keys.env"
        if keys.exists():
            for line in keys.read_text().splitlines():
                if line.startswith("export AITRE_ADMIN_KEY="):
                    self.admin_key = line.split("=", 1)[1]
                elif line.startswith("export AITRE_USER_KEY="):
                    self.user_key = line.split("=", 1)[1]
        return self

    def stop(self) -> None:
        self.proc.stop()

    def sim_control(self, path: str, body: Any) -> httpx.Response:
        """POST to the mounted simulator's control route `path` (e.g. `/_sim/config`). Its key is
        random on first start; the embedded simulator channel's key is rotated to SIM_KEY once
        (through the admin API, as an operator would) so the test can authenticate."""
        admin = {"Authorization": f"Bearer {self.admin_key}"}
        if not getattr(self, "_sim_key_set", False):
            channels = httpx.get(self.url + "/api/admin/channels", headers=admin, timeout=30)
            channels.raise_for_status()
            items = channels.json()
            items = items.get("data", items) if isinstance(items, dict) else items
            sim = next(c for c in items if c["type"] == "simulator")
            httpx.patch(
                f"{self.url}/api/admin/channels/{sim['id']}", json={"key": SIM_KEY}, headers=admin, timeout=30
            ).raise_for_status()
            self._sim_key_set = True
        headers = {"Authorization": f"Bearer {SIM_KEY}"}

        def sent() -> httpx.Response | None:
            r = httpx.post(self.url + "/sim" + path, json=body, headers=headers, timeout=30)
            return None if r.status_code == 401 else r  # until the catalog has the new key

        resp: httpx.Response = wait_until(sent, 10)
        return resp

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def chat(self, key: str, model: str = "gpt-4o-mini", stream: bool = False) -> httpx.Response:
        """One "hi" chat request with `key`, read whole."""
        return httpx.post(
            self.api + "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    @contextlib.contextmanager
    def chat_stream(self, key: str, model: str, max_tokens: int | None = None) -> Iterator[httpx.Response]:
        """A streamed "hi" chat request with `key`, open while the block runs."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        with httpx.stream(
            "POST",
            self.api + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as resp:
            yield resp

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an `aitre` CLI command against this gateway's database."""
        result = subprocess.run(
            aitre_cmd(*args), env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"aitre {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of a query on this gateway's database (SQLite, or PostgreSQL when it runs on one:
        `?` placeholders either way; rows are read by column name)."""
        url = self.env.get("AITRE_DATABASE_URL", "")
        if url.startswith("postgresql"):
            return _pg_query(url, query, params)
        conn = sqlite3.connect(self.data_dir / "aitre.db", timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(query, params))
        finally:
            conn.close()

    def logs_for(self, request_id: str) -> list[sqlite3.Row]:
        return self.sql("SELECT * FROM usage_logs WHERE request_id = ?", (request_id,))

    def wait_log(self, request_id: str, timeout: float = 10.0) -> sqlite3.Row:
        rows: list[sqlite3.Row] = wait_until(lambda: self.logs_for(request_id), timeout)
        return rows[-1]

    def apply(self, config: dict[str, Any]) -> None:
        """Set up channels, prices and groups in one CLI call (`aitre apply`)."""
        path = self.workdir / f"apply-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(config))
        self.cli("apply", str(path))

    def add_channel(self, name: str, base_url: str, models: str, *extra: str) -> None:
        self.cli("channel", "add", name, "--base-url", base_url, "--models", models, *extra)


def _pg_query(url: str, query: str, params: tuple[Any, ...]) -> Any:
    import asyncio
    import re
    from concurrent.futures import ThreadPoolExecutor

    import asyncpg

    numbered = iter(range(1, len(params) + 1))
    text = re.sub(r"\?", lambda _: f"${next(numbered)}", query)

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return list(await conn.fetch(text, *params))
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:  # callable from async tests too: a loop of its own
        return pool.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def running(*procs: Gateway | Simulator) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


def read_content_events(resp: httpx.Response, count: int) -> None:
    """Read a chat stream until `count` events with text have arrived (then the caller may leave)."""
    seen = 0
    for line in resp.iter_lines():
        seen += '"content":"' in line and '"content":""' not in line
        if seen == count:
            return


def channel_spec(
    name: str,
    base_url: str,
    model: str,
    upstream: str | None = None,
    priority: int = 0,
    key: str = SIM_KEY,
    **config: Any,
) -> dict[str, Any]:
    """One channel for `Gateway.apply`: serves `model`, sent upstream as `upstream`, with the
    upstream key `key` (by default the test simulators' key)."""
    spec: dict[str, Any] = {
        "name": name,
        "type": "openai",
        "base_url": base_url,
        "key": key,
        "models": [model],
        "priority": priority,
    }
    if upstream:
        spec["model_mapping"] = {model: upstream}
    if config:
        spec["config"] = config
    return spec
