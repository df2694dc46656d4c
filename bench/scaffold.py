"""What the engineering tools (`profile`, `instructions`, `ab`) share: a scratch folder with the
fake nginx upstream on core 1, aitre or the lean bound started against it, and everything
stopped (servers before their upstream) and removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import nginx
from bench.procs import clean_env, free_port, http_get, pinned

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Scratch:
    work: Path
    upstream_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_aitre(
        self, folder: Path, port: int, extra_env: list[str], wrap: list[str]
    ) -> tuple[subprocess.Popen[bytes], str]:
        """aitre on `port` with one channel to the upstream, its command prefixed by `wrap`
        (taskset, valgrind); returns the process and the user key."""
        env = clean_env(
            {
                "AITRE_DATA_DIR": str(folder / "data"),
                "AITRE_PORT": str(port),
                "AITRE_SIMULATOR_ENABLED": "false",
                "AITRE_LOG_LEVEL": "warning",
                **dict(e.split("=", 1) for e in extra_env),
            }
        )
        aitre = str(ROOT / ".venv" / "bin" / "aitre")
        channel = ["channel", "add", "bench", "--base-url", f"http://127.0.0.1:{self.upstream_port}/v1"]
        channel += ["--models", "gpt-4o-mini", "--key", "sk-x"]
        subprocess.run([aitre, *channel], env=env, check=True, capture_output=True)
        # `aitre serve` prepares the database, then execs the server; the server module does
        # the same preparation itself, so a wrapper (valgrind) can run it directly.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        server = [str(ROOT / ".venv" / "bin" / "python"), "-m", "aitre.server"]
        proc = subprocess.Popen([*wrap, *server], env=env, start_new_session=True)
        self.procs.append(proc)
        keys = folder / "data" / "initial-keys.env"
        deadline = time.monotonic() + 60
        while not keys.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        key = next(
            line.split("=", 1)[1]
            for line in keys.read_text().splitlines()
            if line.startswith("export AITRE_USER_KEY=")
        )
        return proc, key

    def start_lean(self, port: int, cores: str, wrap: list[str] | None = None) -> subprocess.Popen[bytes]:
        cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "uvicorn", "bench.lean_proxy:app"]
        cmd += [
            f"--port={port}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-access-log",
            "--log-level=warning",
        ]
        env = clean_env({"BENCH_UPSTREAM": f"http://127.0.0.1:{self.upstream_port}"})
        proc = subprocess.Popen(
            pinned(cores, [*(wrap or []), *cmd]), env=env, cwd=ROOT, start_new_session=True
        )
        self.procs.append(proc)
        return proc


def wait_healthy(port: int, path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(f"http://127.0.0.1:{port}{path}")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not answer {path} within {timeout:g}s")


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Scratch]:
    work = Path(tempfile.mkdtemp(prefix=prefix))
    s = Scratch(work, free_port())
    conf = nginx.write_upstream(work / "nginx", s.upstream_port)
    s.procs.append(subprocess.Popen(pinned("1", nginx.command(conf, work / "nginx")), start_new_session=True))
    try:
        yield s
    finally:
        for p in reversed(s.procs):  # servers before their upstream: nothing in flight is cut
            subprocess.run(["kill", "--", f"-{p.pid}"], check=False, capture_output=True)
        for p in s.procs:  # gone before their folders are
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
