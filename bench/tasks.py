"""The task engine at scale: keep 1,000, 5,000 then 10,000 MJ tasks open against the simulator and
measure the submit rate, the gateway's CPU per poll and its memory at each level, and how they
grow with the number of open tasks (the slope).

    .venv/bin/python -m bench.tasks [--levels 1000,5000,10000] [--window 20] [--poll-max 10]

The simulator (`aitre simulator`, its MJ tasks kept open with `--sim-stuck`) and the gateway (one
worker, SQLite, the benchmark's task kind from `bench/taskkit.py`) run as their own processes,
pinned to cores 1 and 0 when the machine has two. Tasks are created through HTTP, `--concurrency`
at a time. At each level, once every task has been polled into its steady pace (one poll per
`--poll-max` seconds: a task that stops changing is polled less and less often, up to that), the
gateway's CPU time (user + system, psutil) over `--window` seconds is divided by the task polls
its protocol made meanwhile. The result goes to `bench/results/tasks-<time>.json`.
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
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from bench.procs import Server, Supervisor, clean_env, free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
SIM_KEY = "sk-bench-sim"


def _cores() -> tuple[str | None, str | None]:
    return ("0", "1") if (os.cpu_count() or 1) >= 2 else (None, None)


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def _cpu_seconds(server: Server) -> float:
    proc = psutil.Process(server.pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.sup = Supervisor(work / "logs")
        self.gw_port, self.sim_port = free_port(), free_port()
        self.gw_url = f"http://127.0.0.1:{self.gw_port}"
        self.env = clean_env(
            {
                "AITRE_PORT": str(self.gw_port),
                "AITRE_DATA_DIR": str(work / "data"),
                "AITRE_SIMULATOR_ENABLED": "false",
                "AITRE_TASK_PLUGINS": "bench.taskkit:register",
                "AITRE_TASK_POLL_MIN_SECONDS": "1",
                "AITRE_TASK_POLL_MAX_SECONDS": str(args.poll_max),
                "AITRE_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT),
            }
        )
        self.key = ""
        self.gateway: Server | None = None

    def start(self) -> None:
        gw_cores, sim_cores = _cores()
        py = sys.executable
        sim = self.sup.start(
            "simulator",
            [py, "-m", "aitre", "simulator", "--port", str(self.sim_port), "--key", SIM_KEY],
            cores=sim_cores,
            env=clean_env(),
        )
        wait_healthy(
            sim, f"http://127.0.0.1:{self.sim_port}/_sim/events", timeout=60, headers=self._sim_auth()
        )
        spec = {
            "channels": [
                {
                    "name": "sim-mj",
                    "type": "openai",
                    "base_url": f"http://127.0.0.1:{self.sim_port}",
                    "models": ["mj-bench"],
                    "key": SIM_KEY,
                }
            ]
        }
        path = self.work / "channels.json"
        path.write_text(json.dumps(spec))
        subprocess.run([py, "-m", "aitre", "apply", str(path)], env=self.env, check=True, capture_output=True)
        self.gateway = self.sup.start("gateway", [py, "-m", "aitre", "serve"], cores=gw_cores, env=self.env)
        wait_healthy(self.gateway, self.gw_url + "/healthz", timeout=120)
        for line in (self.work / "data" / "initial-keys.env").read_text().splitlines():
            if line.startswith("export AITRE_USER_KEY="):
                self.key = line.split("=", 1)[1]

    def _sim_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {SIM_KEY}"}

    async def submit(self, client: httpx.AsyncClient, count: int) -> float:
        """Create `count` tasks, `--concurrency` at a time; returns tasks per second."""
        left = count

        async def one() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                resp = await client.post("/bench/submit", json={})
                resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(self.args.concurrency)))
        return count / (time.perf_counter() - started)

    async def stats(self, client: httpx.AsyncClient) -> dict[str, Any]:
        data: dict[str, Any] = (await client.get("/bench/stats")).json()
        return data

    async def level(self, client: httpx.AsyncClient, open_now: int, target: int) -> dict[str, Any]:
        rate = await self.submit(client, target - open_now)
        # Every task reaches its steady pace: it stops changing (stuck) and its polls back off to
        # one per poll-max seconds.
        await asyncio.sleep(self.args.settle)
        assert self.gateway is not None
        before, cpu0, t0 = await self.stats(client), _cpu_seconds(self.gateway), time.perf_counter()
        await asyncio.sleep(self.args.window)
        after, cpu1, t1 = await self.stats(client), _cpu_seconds(self.gateway), time.perf_counter()
        polled = after["polled"] - before["polled"]
        cpu = cpu1 - cpu0
        row = {
            "open_tasks": target,
            "submit_per_s": round(rate, 1),
            "polls_per_s": round(polled / (t1 - t0), 1),
            "poll_calls_per_s": round((after["poll_calls"] - before["poll_calls"]) / (t1 - t0), 2),
            "claim_rounds_per_s": round((after["claim_rounds"] - before["claim_rounds"]) / (t1 - t0), 2),
            "cpu_share": round(cpu / (t1 - t0), 3),
            "cpu_us_per_poll": round(cpu / polled * 1e6, 1) if polled else None,
            "rss_mb": round(self.gateway.rss_bytes() / 2**20, 1),
        }
        print(json.dumps(row), flush=True)
        return row

    async def run(self) -> dict[str, Any]:
        levels = [int(x) for x in self.args.levels.split(",")]
        headers = {"Authorization": f"Bearer {self.key}"}
        limits = httpx.Limits(max_connections=self.args.concurrency)
        async with httpx.AsyncClient(
            base_url=self.gw_url, headers=headers, timeout=60, limits=limits
        ) as client:
            assert self.gateway is not None
            idle = {"open_tasks": 0, "rss_mb": round(self.gateway.rss_bytes() / 2**20, 1)}
            rows, open_now = [], 0
            for target in levels:
                rows.append(await self.level(client, open_now, target))
                open_now = target
        xs = [float(r["open_tasks"]) for r in rows]
        return {
            "settings": vars(self.args),
            "idle": idle,
            "levels": rows,
            "slope": {
                "rss_kb_per_open_task": round(_slope(xs, [r["rss_mb"] * 1024 for r in rows]), 2),
                "cpu_us_per_poll_per_1000_open_tasks": round(
                    _slope(xs, [r["cpu_us_per_poll"] or 0.0 for r in rows]) * 1000, 2
                ),
            },
        }


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1000,5000,10000", help="open tasks to measure at")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per level")
    parser.add_argument("--poll-max", type=float, default=10.0, help="AITRE_TASK_POLL_MAX_SECONDS")
    parser.add_argument(
        "--settle", type=float, default=25.0, help="seconds after submitting before measuring"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="task creations in flight")
    parser.add_argument("--keep-work", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aitre-bench-tasks-"))
    bench = Bench(args, work)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)  # like Ctrl-C: the `finally` below stops both servers
    try:
        bench.start()
        result = asyncio.run(bench.run())
    finally:
        bench.sup.stop_all()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("tasks-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["slope"]))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
