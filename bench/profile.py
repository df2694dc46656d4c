"""Profile aitre's hot path: nginx fake upstream + one aitre worker under wrk, with py-spy
recording the gateway. `python -m bench.profile [--stream] [--seconds 10] [--out FILE.svg]`.

A tool for engineers (flame graph or top functions), not part of the benchmark run.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from bench.load import write_script
from bench.procs import free_port, pinned
from bench.scaffold import ROOT, scratch, wait_healthy


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
    import psutil

    with scratch("aitre-profile-") as sc:
        port = free_port()
        if args.target == "lean":
            gw, key = sc.start_lean(port, args.gateway_cores), "sk-lean"
        else:
            gw, key = sc.start_aitre(sc.work, port, args.env, pinned(args.gateway_cores, []))
        wait_healthy(port, "/health" if args.target == "lean" else "/readyz")
        script = write_script(sc.work / "load.lua", {"Authorization": f"Bearer {key}"}, args.stream)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
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
            proc = psutil.Process(gw.pid)
            proc.cpu_percent()
            time.sleep(args.seconds - 1)
            print(f"gateway CPU: {proc.cpu_percent():.0f}% of one core")
        wrk.wait()
        print(f"gateway RSS after load: {psutil.Process(gw.pid).memory_info().rss / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
