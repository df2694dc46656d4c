"""Instructions per request: the gateway (or the lean bound) under valgrind's callgrind, counting
only while a fixed number of requests is served. `python -m bench.instructions [--target lean]
[--stream] [--requests 1000] [--env AITRE_X=Y]`.

A tool for engineers comparing hot-path changes. req/s and CPU time move by ±20% between runs
on a shared virtual machine; an instruction count moves by well under 1%, whatever else the
machine is doing. It is not time (a cache miss costs more than an add), so confirm a win with
`bench/run.sh`, but it tells a real 3% change from noise.

Under valgrind the server runs ~50 times slower, so work done every few seconds (writing the
books, the catalog check) would be spread over 50 times fewer requests than in real life and
dominate the count: the gateway's periodic intervals are stretched by `--slowdown` so that each
batch holds about as many requests as it would at full speed (so a run needs more requests
than one batch, a few thousand, for the books' writes to be in the count at all).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench import canned
from bench.procs import free_port, pinned
from bench.scaffold import scratch, wait_healthy


async def _load(url: str, headers: dict[str, str], stream: bool, requests: int, connections: int) -> int:
    from aitre.relay.pool import Pool

    pool = Pool(limit=connections)
    body = canned.request_body(stream)
    failed = 0

    async def worker(n: int) -> None:
        nonlocal failed
        for _ in range(n):
            resp = await pool.request("POST", url, headers, body, first_byte_timeout=120)
            data = await resp.read(1 << 20, 120)
            resp.release()
            if resp.status != 200 or (b"[DONE]" not in data if stream else b'"choices"' not in data):
                failed += 1

    await asyncio.gather(*(worker(requests // connections) for _ in range(connections)))
    await pool.close()
    return failed


def _instructions(out_dir: Path) -> int:
    total = 0
    for path in out_dir.glob("callgrind.out*"):
        for line in path.read_text(errors="replace").splitlines():
            if m := re.match(r"(?:summary|totals):\s+(\d+)", line):
                total += int(m.group(1))
                break
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", choices=("aitre", "lean"), default="aitre")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--env", action="append", default=[], help="extra AITRE_X=Y for the gateway")
    parser.add_argument(
        "--slowdown", type=float, default=50.0, help="stretch the gateway's periodic intervals by this [50]"
    )
    parser.add_argument(
        "--keep", default="", help="copy the callgrind file here (for callgrind_annotate, by C function)"
    )
    args = parser.parse_args()
    from aitre.config import Settings

    defaults = Settings()
    stretched = [
        f"AITRE_FLUSH_SECONDS={defaults.flush_seconds * args.slowdown:g}",
        f"AITRE_CACHE_REFRESH_SECONDS={defaults.cache_refresh_seconds * args.slowdown:g}",
        f"AITRE_PROBE_INTERVAL_SECONDS={defaults.probe_interval_seconds * args.slowdown:g}",
        f"AITRE_INSTANCE_HEARTBEAT_SECONDS={defaults.instance_heartbeat_seconds * args.slowdown:g}",
        f"AITRE_INSTANCE_DEAD_SECONDS={defaults.instance_dead_seconds * args.slowdown:g}",
        f"AITRE_METRICS_FLUSH_SECONDS={defaults.metrics_flush_seconds * args.slowdown:g}",
    ]
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    with scratch("aitre-instructions-") as sc:
        port = free_port()
        grind = [
            "valgrind",
            "--tool=callgrind",
            "--quiet",
            "--instr-atstart=no",  # start-up (imports) runs at near native speed, uncounted
            f"--callgrind-out-file={sc.work}/callgrind.out.%p",
        ]
        if args.target == "lean":
            gw, key, health = sc.start_lean(port, "0", grind), "sk-lean", "/health"
        else:
            gw, key = sc.start_aitre(sc.work, port, [*stretched, *args.env], pinned("0", grind))
            health = "/readyz"
        wait_healthy(port, health, timeout=300)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        asyncio.run(_load(url, headers, args.stream, 50, 8))  # warm up: pools, caches, encodings
        subprocess.run(["callgrind_control", "--instr=on", str(gw.pid)], check=True, capture_output=True)
        t0 = time.monotonic()
        failed = asyncio.run(_load(url, headers, args.stream, args.requests, args.connections))
        subprocess.run(["callgrind_control", "--dump", str(gw.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=off", str(gw.pid)], check=True, capture_output=True)
        total = _instructions(sc.work)
        if args.keep:
            for path in sc.work.glob("callgrind.out*"):
                text = path.read_text(errors="replace")
                if "totals:" in text or "summary:" in text:
                    shutil.copy(path, args.keep)
        mode = "stream" if args.stream else "non-stream"
        print(
            f"{args.target} {mode}: {total / args.requests / 1000:.1f} k instructions per request "
            f"({args.requests} requests, c={args.connections}, {failed} failed, "
            f"{time.monotonic() - t0:.0f} s under valgrind)"
        )


if __name__ == "__main__":
    main()
