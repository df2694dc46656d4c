"""Profile aitre's hot path: nginx fake upstream + one aitre worker under wrk, with py-spy
recording the gateway. `python -m bench.profile [--stream] [--seconds 10] [--out FILE.svg]`.

A tool for engineers (flame graph or top functions), not part of the benchmark run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import canned, nginx
from bench.load import write_script
from bench.procs import clean_env, free_port, http_get, pinned

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--out", default="", help="flame graph (.svg) or speedscope (.json); default: wrk only"
    )
    parser.add_argument("--env", action="append", default=[], help="extra AITRE_X=Y for the gateway")
    parser.add_argument("--gateway-cores", default="0", help="taskset cores for the gateway")
    parser.add_argument(
        "--target",
        choices=("aitre", "lean"),
        default="aitre",
        help="lean: the Starlette bound, for comparison",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aitre-profile-", dir=os.environ.get("BENCH_TMP")))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, gw_port = free_port(), free_port()
        conf = nginx.write_upstream(work / "nginx", up_port)
        procs.append(
            subprocess.Popen(pinned("1", nginx.command(conf, work / "nginx")), start_new_session=True)
        )
        if args.target == "lean":
            gw, key = _start_lean(gw_port, up_port, args.gateway_cores), "sk-lean"
        else:
            gw, key = _start_aitre_env(work, gw_port, up_port, args.env, pinned(args.gateway_cores, []))
        procs.append(gw)
        deadline = time.monotonic() + 60
        health = "/health" if args.target == "lean" else "/healthz"
        while time.monotonic() < deadline:
            try:
                if http_get(f"http://127.0.0.1:{gw_port}{health}")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        script = write_script(work / "load.lua", {"Authorization": f"Bearer {key}"}, args.stream)
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        status, _ = http_get(f"http://127.0.0.1:{gw_port}{health.replace('healthz', 'readyz')}")
        assert status == 200, status
        import psutil

        print(f"gateway RSS before load: {psutil.Process(gw.pid).memory_info().rss / 2**20:.1f} MB")
        spy = [
            str(ROOT / ".venv" / "bin" / "py-spy"),
            "record",
            "--rate",
            "1000",
            "--pid",
            str(gw.pid),
            "--duration",
            str(args.seconds),
            "--gil",  # only the thread holding the GIL: idle pool threads would swamp the profile
        ]
        spy += (
            ["--output", args.out, "--format", "speedscope" if args.out.endswith(".json") else "flamegraph"]
            if args.out
            else []
        )
        wrk = subprocess.Popen(
            pinned(
                "1", ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds + 2}s", "-s", str(script), url]
            ),
            stdout=None if not args.out else subprocess.DEVNULL,
        )
        time.sleep(1)
        if args.out:
            subprocess.run(spy, check=False)
        else:
            import psutil

            proc = psutil.Process(gw.pid)
            proc.cpu_percent()
            time.sleep(args.seconds - 1)
            print(f"gateway CPU: {proc.cpu_percent():.0f}% of one core")
        wrk.wait()
        print(f"gateway RSS after load: {psutil.Process(gw.pid).memory_info().rss / 2**20:.1f} MB")
        _ = canned
    finally:
        for p in procs:
            subprocess.run(["kill", "--", f"-{p.pid}"], check=False, capture_output=True)
        for p in procs:  # gone before their directories are
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def _start_aitre_env(
    work: Path, gw_port: int, up_port: int, extra_env: list[str], wrap: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """aitre on `gw_port` with one channel to the upstream, its command prefixed by `wrap`
    (taskset, valgrind); returns the process and the user key."""
    env = clean_env(
        {
            "AITRE_DATA_DIR": str(work / "data"),
            "AITRE_PORT": str(gw_port),
            "AITRE_SIMULATOR_ENABLED": "false",
            "AITRE_LOG_LEVEL": "warning",
            **dict(e.split("=", 1) for e in extra_env),
        }
    )
    aitre = str(ROOT / ".venv" / "bin" / "aitre")
    channel = ["channel", "add", "bench", "--base-url", f"http://127.0.0.1:{up_port}/v1"]
    channel += ["--models", "gpt-4o-mini", "--key", "sk-x"]
    subprocess.run([aitre, *channel], env=env, check=True, capture_output=True)
    # `aitre serve` prepares the database, then execs the server; the server module does the
    # same preparation itself, so a wrapper (valgrind) can run it directly, as `serve` would.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    server = [str(ROOT / ".venv" / "bin" / "python"), "-m", "aitre.server"]
    gw = subprocess.Popen([*wrap, *server] if wrap else [aitre, "serve"], env=env, start_new_session=True)
    keys = work / "data" / "initial-keys.env"
    deadline = time.monotonic() + 60
    while not keys.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    key = next(
        line.split("=", 1)[1]
        for line in keys.read_text().splitlines()
        if line.startswith("export AITRE_USER_KEY=")
    )
    return gw, key


def _start_lean(
    port: int, up_port: int, cores: str, wrap: list[str] | None = None
) -> subprocess.Popen[bytes]:
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "uvicorn", "bench.lean_proxy:app", f"--port={port}"]
    cmd += ["--loop=uvloop", "--http=httptools", "--no-access-log", "--log-level=warning"]
    env = clean_env({"BENCH_UPSTREAM": f"http://127.0.0.1:{up_port}"})
    return subprocess.Popen(pinned(cores, [*(wrap or []), *cmd]), env=env, cwd=ROOT, start_new_session=True)


if __name__ == "__main__":
    main()
