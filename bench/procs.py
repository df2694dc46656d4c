"""Starting, pinning, health-checking, measuring and stopping the servers the benchmark runs.

Every server is started in its own session (so its process group holds it and all it forks:
nginx workers, uvicorn workers) and under `taskset`, which execs the command, so the pid we
hold is the server's own. Stopping sends SIGTERM to the group, then SIGKILL if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# Environment variables dropped before starting any server, so that settings of the shell the
# benchmark was started from (a developer's AITRE_PORT, a DATABASE_URL that would turn LiteLLM's
# database on, an HTTP proxy that httpx would honour) cannot change what is measured.
_DROP_PREFIXES = ("AITRE_", "LITELLM_")
_DROP_NAMES = {"DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"}


class StartError(Exception):
    """A server did not come up; the message says why (and where its log is)."""


def free_port() -> int:
    """A port nothing listens on now. The kernel picks it; the tiny window before the server binds
    it is acceptable on a machine that runs nothing else on ephemeral ports."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROP_PREFIXES) and k not in _DROP_NAMES and not k.startswith("VIRTUAL_ENV")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def pinned(cores: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cores, *cmd] if cores else cmd


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    cores: str | None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server and everything it forked (uvicorn/nginx workers)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 8.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(5)
        # Workers that outlived their parent are still in the group; make sure none is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@dataclass
class Supervisor:
    """Owns every server the run starts; `stop_all` runs on normal exit, errors and Ctrl-C."""

    log_dir: Path
    servers: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        cores: str | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                pinned(cores, cmd),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else clean_env(),
                cwd=cwd,
                start_new_session=True,
            )
        server = Server(name, proc, log, cores)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()


def http_get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(
    server: Server, url: str, *, timeout: float, headers: Mapping[str, str] | None = None
) -> None:
    """Poll `url` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise StartError(
                f"{server.name} exited with code {server.proc.returncode} during start-up "
                f"(log: {server.log}):\n{server.log_tail()}"
            )
        try:
            status, body = http_get(url, headers)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StartError(
        f"{server.name} not healthy at {url} after {timeout:g}s ({last}); log: {server.log}\n"
        f"{server.log_tail()}"
    )


def _busy_seconds() -> float:
    """CPU time all processes on the machine used so far (steal excluded: that is the
    hypervisor's, not this machine's processes')."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


class StealMeter:
    """The share of the machine's CPU time the hypervisor gave to other guests while it ran
    (`steal` in /proc/stat), in percent. On a shared VM it comes in bursts: a probe round run
    during one measures the neighbour, not the server (seen here: 0% steal, proxy p50 0.45 ms;
    23% steal, 2.5 ms)."""

    def __init__(self) -> None:
        self._t0 = psutil.cpu_times()

    def stop(self) -> float:
        t1 = psutil.cpu_times()
        total = sum(t1) - sum(self._t0)
        steal = getattr(t1, "steal", 0.0) - getattr(self._t0, "steal", 0.0)
        return 100.0 * steal / total if total > 0 else 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process and its children have used so far."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def pids_named(name: str) -> list[int]:
    """Processes of a service the run relies on (Redis for several workers)."""
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def _own_cpu_seconds(servers: list[Server], helpers: list[int]) -> float:
    # This process, the children it has reaped (wrk, the probe), the live servers and the
    # services they use (a Redis that several workers share is part of that target's work).
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        me.ru_utime
        + me.ru_stime
        + kids.ru_utime
        + kids.ru_stime
        + sum(tree_cpu_seconds(s.pid) for s in servers)
        + sum(tree_cpu_seconds(pid) for pid in helpers)
    )


class ForeignCpu:
    """How busy the machine was with work that is not the benchmark's own, during a cell, in % of
    all cores. Other jobs on a shared machine (a test suite, a build) steal CPU from the server
    under test and make its numbers worse; this says when a cell was disturbed."""

    def __init__(self, servers: list[Server], helpers: list[int] | None = None) -> None:
        self._servers = servers
        self._helpers = helpers or []
        self._t0 = time.monotonic()
        self._busy0 = _busy_seconds()
        self._own0 = _own_cpu_seconds(servers, self._helpers)

    def stop(self) -> float:
        wall = time.monotonic() - self._t0
        busy = _busy_seconds() - self._busy0
        own = _own_cpu_seconds(self._servers, self._helpers) - self._own0
        ncpu = psutil.cpu_count() or 1
        return max(0.0, (busy - own) / (wall * ncpu) * 100) if wall > 0 else 0.0


def wait_until_quiet(max_wait: float, threshold_pct: float = 10.0) -> float:
    """Wait (up to `max_wait` s) for a second in which the whole machine is below
    `threshold_pct` busy; between cells our own servers are idle, so what is left is other
    people's work. Returns the last busy % seen."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = float(psutil.cpu_percent(interval=0.5))
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy
