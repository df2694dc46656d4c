"""Scaling out: aitre at 1 and 2 instances behind an nginx load balancer, the way
docs/deploy.md runs it (one PostgreSQL database, one Redis, separate data folders), and LiteLLM
at the same instance counts when its virtualenv is there. `.venv/bin/python -m bench.scale`.

Each instance is one `aitre serve` process (1 worker); they share a fresh PostgreSQL database
(made in the `test` server, dropped afterwards) and a Redis of the run's own (a `redis-server`
on a free port), so balances, rate windows and key slots are shared as in production. nginx in
front: one worker, a keep-alive pool to the instances, `proxy_buffering off`. The fake upstream
and wrk are those of `bench.run`. Nothing is pinned: with N instances on a two-core machine
that also runs the upstream, wrk, nginx, PostgreSQL and Redis, what a second instance adds is
what the machine has left; the report says how many cores there were.

Per target and instance count, non-stream and stream at one concurrency: req/s, p50, p99,
errors (every response checked, as in `bench.run`), and the CPU per request of the instances
and of the shared services (nginx in front, Redis, PostgreSQL). The scaling is req/s at N
instances over req/s at 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from bench import canned, nginx
from bench.load import run_wrk, write_script
from bench.procs import Server, Supervisor, clean_env, free_port, tree_cpu_seconds, wait_healthy
from bench.targets import DUMMY_KEY, LITELLM_MASTER_KEY, Endpoint, Unavailable, _litellm_config, verify

REPO = Path(__file__).resolve().parent.parent
console = Console(width=None if sys.stdout.isatty() else 150)
PG_DSN = os.environ.get(
    "BENCH_PG", os.environ.get("AITRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
)


def say(message: str) -> None:
    console.print(f"[bold cyan]scale[/bold cyan] {message}")


@dataclass
class Row:
    target: str
    instances: int
    mode: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_instances: float  # the instances' CPU per request
    cpu_us_shared: float  # nginx in front, Redis, PostgreSQL: per request
    rss_mb: float  # the instances' memory after the cell, all together


def write_balancer(prefix: Path, port: int, backends: list[int]) -> Path:
    """nginx in front of the instances, as docs/deploy.md sets it up (streaming: no buffering)."""
    prefix.mkdir(parents=True, exist_ok=True)
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in backends)
    conf = (
        nginx._main_block(prefix)
        + "http {\n"
        + nginx._http_common(prefix)
        + f"    upstream gateways {{\n{servers}        keepalive 256;\n    }}\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port} backlog=4096;\n"
        + "        client_max_body_size 32m;\n"
        + "        location / {\n"
        + "            proxy_pass http://gateways;\n"
        + "            proxy_http_version 1.1;\n"
        + '            proxy_set_header Connection "";\n'
        + "            proxy_buffering off;\n"
        + "            proxy_read_timeout 600s;\n"
        + "        }\n"
        + "    }\n"
        + "}\n"
    )
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Services:
    """The run's own Redis, and one fresh database per deployment."""

    def __init__(self, sup: Supervisor, work: Path) -> None:
        self.sup, self.work = sup, work
        self.databases: list[str] = []
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed (apt-get install redis-server)")
        self.redis_port = free_port()
        port = str(self.redis_port)
        cmd = [binary, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.redis = sup.start("redis", cmd, cores=None, cwd=work)
        deadline = time.monotonic() + 10
        while not _pong(self.redis_port):
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not come up")
            time.sleep(0.05)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def database(self) -> str:
        name = f"aitre_bench_{uuid.uuid4().hex[:8]}"
        try:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        except (OSError, asyncpg.PostgresError) as exc:
            raise SystemExit(f"PostgreSQL at {PG_DSN} is needed (BENCH_PG): {exc}") from None
        self.databases.append(name)
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    def backends(self) -> list[int]:
        """The PostgreSQL server processes serving this run's databases (not other users')."""

        async def query() -> list[int]:
            conn = await asyncpg.connect(PG_DSN)
            try:
                rows = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", self.databases
                )
                return [int(r["pid"]) for r in rows]
            finally:
                await conn.close()

        return asyncio.run(query()) if self.databases else []

    def drop(self) -> None:
        for name in self.databases:
            try:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except (OSError, asyncpg.PostgresError) as exc:
                say(f"could not drop {name}: {exc}")
        self.databases.clear()


def _pong(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _aitre() -> str:
    return str(Path(sys.executable).parent / "aitre")


Started = tuple[list[tuple[Server, int]], dict[str, str]]  # (server, port) each; request headers


def start_aitre(sup: Supervisor, svc: Services, work: Path, n: int, upstream_port: int) -> Started:
    url = svc.database()
    from cryptography.fernet import Fernet

    shared = {
        "AITRE_DATABASE_URL": url,
        "AITRE_REDIS_URL": svc.redis_url,
        "AITRE_SECRET_KEY": Fernet.generate_key().decode(),
        "AITRE_SIMULATOR_ENABLED": "false",
        "AITRE_LOG_LEVEL": "warning",
        "AITRE_SHUTDOWN_GRACE_SECONDS": "3",
    }
    servers: list[tuple[Server, int]] = []
    key = ""
    for i in range(n):
        data = work / f"aitre-{n}x-{i}"
        data.mkdir(parents=True, exist_ok=True)
        env = clean_env({**shared, "AITRE_DATA_DIR": str(data)})
        if i == 0:
            base = f"http://127.0.0.1:{upstream_port}/v1"
            add = [_aitre(), "channel", "add", "bench", "--base-url", base, "--models", canned.MODEL]
            subprocess.run(
                [*add, "--key", DUMMY_KEY], env=env, cwd=data, capture_output=True, timeout=120, check=True
            )
        port = free_port()
        cmd = [_aitre(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = sup.start(f"aitre-{n}x-{i}", cmd, cores=None, env=env, cwd=data)
        wait_healthy(server, f"http://127.0.0.1:{port}/readyz", timeout=90)
        if i == 0:
            for line in (data / "initial-keys.env").read_text().splitlines():
                if line.startswith("export AITRE_USER_KEY="):
                    key = line.split("=", 1)[1].strip().strip("'\"")
        servers.append((server, port))
    return servers, {"Authorization": f"Bearer {key}"}


def start_litellm(sup: Supervisor, work: Path, n: int, upstream_port: int, exe: Path) -> Started:
    servers: list[tuple[Server, int]] = []
    for i in range(n):
        cwd = work / f"litellm-{n}x-{i}"
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "config.yaml").write_text(_litellm_config(upstream_port))
        env = clean_env(
            {
                "LITELLM_LOG": "ERROR",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY_DISABLED": "True",
                "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
            }
        )
        port = free_port()
        config = str(cwd / "config.yaml")
        cmd = [str(exe), "--config", config, "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        server = sup.start(f"litellm-{n}x-{i}", cmd, cores=None, env=env, cwd=cwd)
        wait_healthy(server, f"http://127.0.0.1:{port}/health/liveliness", timeout=240)
        servers.append((server, port))
    return servers, {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}


def measure(
    target: str,
    n: int,
    started: list[tuple[Server, int]],
    headers: dict[str, str],
    sup: Supervisor,
    work: Path,
    args: argparse.Namespace,
    shared_pids: list[int],
    svc: Services | None = None,
) -> list[Row]:
    lb_port = free_port()
    prefix = work / f"lb-{target}-{n}"
    servers = [s for s, _ in started]
    conf = write_balancer(prefix, lb_port, [port for _, port in started])
    lb = sup.start(f"lb-{target}-{n}", nginx.command(conf, prefix), cores=None)
    url = f"http://127.0.0.1:{lb_port}/v1/chat/completions"
    health = "/readyz" if target == "aitre" else "/health/liveliness"
    try:
        wait_healthy(lb, f"http://127.0.0.1:{lb_port}{health}", timeout=30)
        verify(Endpoint(url, headers, servers[0], owned=False))
        rows = []
        for stream in (False, True):
            mode = "stream" if stream else "non-stream"
            script = write_script(prefix / f"{mode}.lua", headers, stream)
            run_wrk(url, script, concurrency=args.concurrency, duration=args.warmup, cores=None)
            pids = [s.pid for s in servers]
            shared_pids = [*shared_pids, *svc.backends()] if svc is not None else shared_pids
            before = sum(tree_cpu_seconds(p) for p in pids)
            shared_before = sum(tree_cpu_seconds(p) for p in [lb.pid, *shared_pids])
            result = run_wrk(url, script, concurrency=args.concurrency, duration=args.duration, cores=None)
            used = sum(tree_cpu_seconds(p) for p in pids) - before
            shared_used = sum(tree_cpu_seconds(p) for p in [lb.pid, *shared_pids]) - shared_before
            per = 1e6 / max(1, result.requests)
            rows.append(
                Row(
                    target,
                    n,
                    mode,
                    round(result.rps, 1),
                    round(result.p50_ms, 2),
                    round(result.p99_ms, 2),
                    result.errors,
                    round(used * per, 1),
                    round(shared_used * per, 1),
                    round(sum(s.rss_bytes() for s in servers) / 2**20, 1),
                )
            )
            got = f"{result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, {result.errors} errors"
            say(f"{target} ×{n} {mode}: {got}")
        return rows
    finally:
        sup.stop(lb)


def report(rows: list[Row], args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    title = f"scaling behind nginx, c={args.concurrency}, {args.duration} s per cell, {os.cpu_count()} cores"
    table = Table(title=title)
    columns = ["target", "instances", "mode", "req/s", "p50 ms", "p99 ms", "errors"]
    for col in [*columns, "CPU µs/req (instances)", "CPU µs/req (nginx+Redis+PG)", "RSS MB", "scaling"]:
        table.add_column(col)
    base = {(r.target, r.mode): r.rps for r in rows if r.instances == 1}
    out_rows = []
    for r in rows:
        scaling = r.rps / base[(r.target, r.mode)] if base.get((r.target, r.mode)) else None
        table.add_row(
            r.target,
            str(r.instances),
            r.mode,
            f"{r.rps:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            f"{r.cpu_us_instances:.0f}",
            f"{r.cpu_us_shared:.0f}",
            f"{r.rss_mb:.0f}",
            f"{scaling:.2f}×" if scaling else "",
        )
        out_rows.append({**asdict(r), "scaling": round(scaling, 3) if scaling else None})
    console.print(table)
    for note in notes:
        console.print(f"note: {note}")
    return {
        "rows": out_rows,
        "notes": notes,
        "cores": os.cpu_count(),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds measured per cell [10]")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per cell [2]")
    ap.add_argument("--concurrency", type=int, default=64, help="wrk connections [64]")
    ap.add_argument("--instances", default="1,2", help="instance counts [1,2]")
    ap.add_argument("--targets", default="aitre,litellm", help="aitre, litellm [both]")
    ap.add_argument("--keep-work", action="store_true", help="keep configs, logs and data folders")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.instances.split(",")]
    targets = args.targets.split(",")
    work = Path(tempfile.mkdtemp(prefix="aitre-scale-"))
    sup = Supervisor(work / "logs")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    rows: list[Row] = []
    notes: list[str] = []
    svc: Services | None = None
    try:
        upstream_port = free_port()
        conf = nginx.write_upstream(work / "upstream", upstream_port)
        upstream = sup.start("upstream", nginx.command(conf, work / "upstream"), cores=None)
        wait_healthy(upstream, f"http://127.0.0.1:{upstream_port}/health", timeout=30)
        svc = Services(sup, work)
        shared = [svc.redis.pid]
        exe = REPO / "bench" / ".venv-litellm" / "bin" / "litellm"
        for target in targets:
            if target == "litellm" and not exe.exists():
                notes.append(
                    f"LiteLLM not measured: {exe} is missing (bench/run.sh installs it on first use)"
                )
                continue
            for n in counts:
                say(f"starting {target} ×{n}")
                try:
                    if target == "aitre":
                        servers, headers = start_aitre(sup, svc, work, n, upstream_port)
                    else:
                        servers, headers = start_litellm(sup, work, n, upstream_port, exe)
                    rows += measure(target, n, servers, headers, sup, work, args, shared, svc)
                except (Unavailable, subprocess.CalledProcessError, RuntimeError) as exc:
                    notes.append(f"{target} ×{n} not measured: {exc}")
                finally:
                    for s in [s for s in sup.servers if s.name.startswith(f"{target}-{n}x")]:
                        sup.stop(s)
                    svc.drop()
    except KeyboardInterrupt:
        notes.append("interrupted")
    finally:
        sup.stop_all()
        if svc is not None:
            svc.drop()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    data = report(rows, args, notes)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2))
    say(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
