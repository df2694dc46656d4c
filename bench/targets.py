"""The targets measured, each started, health-checked and verified the same way.

Every target listens on a free port on 127.0.0.1 and is pinned to the server core with taskset
(core 0), except `direct` (the upstream itself, on the load core) and `aitre-w2` (allowed on both
cores, labelled so). A target is verified to return the canned answer, non-stream and stream,
before it is measured; one that cannot start or verify is reported as missing, never estimated.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import canned, nginx
from bench.probe import completion_problem, request_once, stream_content_problem
from bench.procs import Server, StartError, Supervisor, clean_env, free_port, pids_named, wait_healthy

DUMMY_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"


class Unavailable(Exception):
    """The target cannot be measured in this run (not installed, failed to start or verify)."""


@dataclass
class Context:
    repo: Path
    work: Path  # this run's scratch dir: configs, data dirs, logs
    sup: Supervisor
    upstream: Server
    upstream_port: int
    server_cores: str  # where servers under test run
    load_cores: str  # where the upstream, wrk and the probe run
    litellm_bin: Path | None  # None: LiteLLM could not be installed
    litellm_reason: str = ""


@dataclass
class Endpoint:
    url: str  # the chat completions URL
    headers: dict[str, str]
    server: Server  # whose RSS (incl. children) is reported
    owned: bool = True  # stopped after measuring (the shared upstream is not)
    cores: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    helpers: list[int] = field(default_factory=list)  # pids of services it uses (Redis): its own CPU


@dataclass(frozen=True)
class TargetSpec:
    name: str
    label: str
    start: Callable[[Context], Endpoint]


def _chat_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def _health(ctx: Context, server: Server, url: str, timeout: float) -> None:
    try:
        wait_healthy(server, url, timeout=timeout)
    except StartError as exc:
        ctx.sup.stop(server)
        raise Unavailable(str(exc)) from None


def start_direct(ctx: Context) -> Endpoint:
    return Endpoint(
        _chat_url(ctx.upstream_port),
        {"Authorization": f"Bearer {DUMMY_KEY}"},
        ctx.upstream,
        owned=False,
        cores=ctx.load_cores,
    )


def start_nginx_proxy(ctx: Context) -> Endpoint:
    port = free_port()
    prefix = ctx.work / "nginx-proxy"
    conf = nginx.write_proxy(prefix, port, ctx.upstream_port)
    server = ctx.sup.start("nginx-proxy", nginx.command(conf, prefix), cores=ctx.server_cores)
    _health(ctx, server, f"http://127.0.0.1:{port}/health", 10)
    return Endpoint(_chat_url(port), {"Authorization": f"Bearer {DUMMY_KEY}"}, server, cores=ctx.server_cores)


def start_lean(ctx: Context) -> Endpoint:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.lean_proxy:app",
        "--host=127.0.0.1",
        f"--port={port}",
        "--loop=uvloop",
        "--http=httptools",
        "--workers=1",
        "--no-access-log",
        "--log-level=warning",
    ]
    env = clean_env({"BENCH_UPSTREAM": f"http://127.0.0.1:{ctx.upstream_port}"})
    server = ctx.sup.start("lean-python", cmd, cores=ctx.server_cores, env=env, cwd=ctx.repo)
    _health(ctx, server, f"http://127.0.0.1:{port}/health", 30)
    return Endpoint(_chat_url(port), {"Authorization": f"Bearer {DUMMY_KEY}"}, server, cores=ctx.server_cores)


def _litellm_config(upstream_port: int) -> str:
    # One model, no database (no DATABASE_URL, nothing to store spend in), every logging and
    # telemetry hook off: LiteLLM doing the least it can per request, as aitre is asked to.
    return textwrap.dedent(
        f"""\
        model_list:
          - model_name: {canned.MODEL}
            litellm_params:
              model: openai/{canned.MODEL}
              api_base: http://127.0.0.1:{upstream_port}/v1
              api_key: {DUMMY_KEY}
        litellm_settings:
          telemetry: False
          callbacks: []
          success_callback: []
          failure_callback: []
          set_verbose: False
          json_logs: False
        general_settings:
          master_key: {LITELLM_MASTER_KEY}
          disable_spend_logs: True
        """
    )


def start_litellm(ctx: Context) -> Endpoint:
    if ctx.litellm_bin is None:
        raise Unavailable(ctx.litellm_reason or "LiteLLM is not installed")
    port = free_port()
    cwd = ctx.work / "litellm"
    cwd.mkdir(parents=True, exist_ok=True)
    config = cwd / "config.yaml"
    config.write_text(_litellm_config(ctx.upstream_port))
    env = clean_env(
        {
            "LITELLM_LOG": "ERROR",
            # The cost map is otherwise fetched from the internet at start-up; this machine has
            # none, and the bundled copy is what a fetch failure falls back to anyway.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY_DISABLED": "True",
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        }
    )
    cmd = [
        str(ctx.litellm_bin),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    server = ctx.sup.start("litellm", cmd, cores=ctx.server_cores, env=env, cwd=cwd)
    # LiteLLM imports a great deal; on one pinned core its start-up takes tens of seconds.
    _health(ctx, server, f"http://127.0.0.1:{port}/health/liveliness", 180)
    return Endpoint(
        _chat_url(port),
        {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
        server,
        cores=ctx.server_cores,
        versions={"litellm": _venv_version(ctx.litellm_bin, "litellm")},
    )


def _aitre_bin() -> Path:
    return Path(sys.executable).parent / "aitre"


def _redis_url() -> str:
    """A local Redis for the multi-worker row, if one answers (BENCH_REDIS_URL overrides)."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return url if conn.recv(16).startswith(b"+PONG") else ""
    except OSError:
        return ""


def _start_aitre(ctx: Context, name: str, workers: int, cores: str) -> Endpoint:
    data = ctx.work / name
    data.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        {
            "AITRE_DATA_DIR": str(data),
            "AITRE_SIMULATOR_ENABLED": "false",
            # Errors only, like LiteLLM's LITELLM_LOG=ERROR; usage logging (a database feature,
            # not a log line) stays on, as do billing and every other default.
            "AITRE_LOG_LEVEL": "warning",
            "AITRE_SHUTDOWN_GRACE_SECONDS": "3",
            # Several workers share balances through Redis (the documented multi-process set-up);
            # without it they reserve in SQLite, which is exact but slow.
            **({"AITRE_REDIS_URL": _redis_url()} if workers > 1 and _redis_url() else {}),
        }
    )
    aitre = str(_aitre_bin())
    add = subprocess.run(
        [
            aitre,
            "channel",
            "add",
            "bench",
            "--base-url",
            f"http://127.0.0.1:{ctx.upstream_port}/v1",
            "--models",
            canned.MODEL,
            "--key",
            DUMMY_KEY,
        ],
        env=env,
        cwd=data,  # aitre reads ./.env and ./aitre.toml: keep the repo's out of it
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if add.returncode != 0:
        raise Unavailable(f"aitre channel add failed: {(add.stderr or add.stdout).strip()[-500:]}")
    port = free_port()
    cmd = [aitre, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    server = ctx.sup.start(name, cmd, cores=cores, env=env, cwd=data)
    _health(ctx, server, f"http://127.0.0.1:{port}/readyz", 90)
    key = _read_user_key(data / "initial-keys.env")
    if key is None:
        ctx.sup.stop(server)
        raise Unavailable(f"no AITRE_USER_KEY in {data / 'initial-keys.env'}")
    redis = "AITRE_REDIS_URL" in env
    return Endpoint(
        _chat_url(port),
        {"Authorization": f"Bearer {key}"},
        server,
        cores=cores,
        versions={"aitre": _version("aitre")},
        helpers=pids_named("redis-server") if redis else [],
    )


def _read_user_key(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep and name.strip() == "AITRE_USER_KEY":
            return value.strip().strip("'\"")
    return None


def start_aitre(ctx: Context) -> Endpoint:
    return _start_aitre(ctx, "aitre", 1, ctx.server_cores)


def start_aitre_w2(ctx: Context) -> Endpoint:
    # Two workers on one core would only measure context switches; this row shows what the
    # second core buys, so it is allowed both (and shares core 1 with the upstream and wrk).
    return _start_aitre(ctx, "aitre-w2", 2, f"{ctx.server_cores},{ctx.load_cores}")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _venv_version(bin_path: Path, dist: str) -> str:
    py = bin_path.parent / "python"
    out = subprocess.run(
        [str(py), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout.strip() or "?"


TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec("direct", "direct to the nginx upstream", start_direct),
    TargetSpec("nginx", "nginx proxy_pass (1 worker)", start_nginx_proxy),
    TargetSpec("lean", "lean Python (Starlette + aiohttp)", start_lean),
    TargetSpec("litellm", "LiteLLM proxy (1 worker, no DB)", start_litellm),
    TargetSpec("aitre", "aitre serve (1 worker)", start_aitre),
    TargetSpec("aitre-w2", "aitre serve --workers 2 (cores 0+1)", start_aitre_w2),
)


def verify(endpoint: Endpoint) -> None:
    """One non-stream and one stream request must return the canned answer in full."""

    async def check() -> None:
        for stream in (False, True):
            reply = await request_once(endpoint.url, endpoint.headers, canned.request_body(stream))
            kind = "stream" if stream else "non-stream"
            if reply.status != 200:
                raise Unavailable(f"{kind} verification: HTTP {reply.status}: {reply.body[:300]!r}")
            problem = stream_content_problem(reply.body) if stream else completion_problem(reply.body)
            if problem is not None:
                raise Unavailable(f"{kind} verification: {problem}")

    try:
        asyncio.run(check())
    except (OSError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"verification request failed: {exc!r}") from None
