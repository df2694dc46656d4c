"""Profile aitre's hot path: nginx fake upstream + one aitre worker under wrk, with py-spy
recording the gateway. `python -m bench.profile [--stream] [--seconds 10] [--out FILE.svg]`.

A tool for engineers (flame graph or top functions), not part of the benchmark run.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aitre-profile-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, gw_port = free_port(), free_port()
        conf = nginx.write_upstream(work / "nginx", up_port)
        procs.append(
            subprocess.Popen(pinned("1", nginx.command(conf, work / "nginx")), start_new_session=True)
        )
        env = clean_env(
            {
                "AITRE_DATA_DIR": str(work / "data"),
                "AITRE_PORT": str(gw_port),
                "AITRE_SIMULATOR_ENABLED": "false",
                "AITRE_LOG_LEVEL": "warning",
                **dict(e.split("=", 1) for e in args.env),
            }
        )
        aitre = str(ROOT / ".venv" / "bin" / "aitre")
        subprocess.run(
            [
                aitre,
                "channel",
                "add",
                "bench",
                "--base-url",
                f"http://127.0.0.1:{up_port}/v1",
                "--models",
                "gpt-4o-mini",
                "--key",
                "sk-x",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        gw = subprocess.Popen(pinned(args.gateway_cores, [aitre, "serve"]), env=env, start_new_session=True)
        procs.append(gw)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http_get(f"http://127.0.0.1:{gw_port}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        key = next(
            line.split("=", 1)[1]
            for line in (work / "data" / "initial-keys.env").read_text().splitlines()
            if line.startswith("export AITRE_USER_KEY=")
        )
        script = write_script(work / "load.lua", {"Authorization": f"Bearer {key}"}, args.stream)
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        status, _ = http_get(f"http://127.0.0.1:{gw_port}/readyz")
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
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
