"""A/B: two servers on the same core at the same time, each under its own wrk, compared by the
CPU time they spend per request. `python -m bench.ab A B [--stream] [-c 8] [--seconds 6]
[--rounds 4]`, where A and B are `lean`, `aitre`, `aitre:AITRE_X=1,AITRE_Y=2` (settings) or
`aitre@/path/to/src` (another version of the code, e.g. a `git worktree` of another commit).

A tool for engineers. On a shared virtual machine the same server's req/s moves by ±20% from
one minute to the next (steal time, a neighbour's cache traffic). Two servers measured side by
side live through the same disturbances, so the ratio of their CPU per request is steady even
when the absolute numbers are not (seen here: ±2% between rounds while each side moved ±15%).
Sharing one core, each runs at about half its throughput, with the caches of both in play:
compare the ratio, not the absolute values, with `bench/run.sh`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import nginx
from bench.load import write_script
from bench.procs import free_port, http_get, pinned
from bench.profile import _start_aitre_env, _start_lean


def _cpu(pid: int) -> tuple[float, float]:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    times = [p.cpu_times() for p in procs]
    return sum(t.user for t in times), sum(t.system for t in times)


def _start(spec: str, work: Path, up_port: int) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    work.mkdir(parents=True)
    if spec == "lean":
        return _start_lean(port, up_port, "0"), port, "sk-lean"
    name, _, settings = spec.partition(":")
    name, _, src = name.partition("@")
    if name != "aitre":
        raise SystemExit(f"unknown target {spec!r}: lean, aitre, aitre:AITRE_X=Y,..., aitre@SRC")
    env = [e for e in settings.split(",") if e]
    if src:
        env.append(f"PYTHONPATH={Path(src).resolve()}")
    proc, key = _start_aitre_env(work, port, up_port, env, pinned("0", []))
    return proc, port, key


def _wrk(connections: int, seconds: int, script: Path, port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]


def _wait(port: int, health: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if http_get(f"http://127.0.0.1:{port}{health}")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aitre-ab-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port = free_port()
        conf = nginx.write_upstream(work / "nginx", up_port)
        procs.append(
            subprocess.Popen(pinned("1", nginx.command(conf, work / "nginx")), start_new_session=True)
        )
        sides = []
        for label, spec in (("a", args.a), ("b", args.b)):
            proc, port, key = _start(spec, work / label, up_port)
            procs.append(proc)
            _wait(port, "/health" if spec == "lean" else "/readyz")
            script = write_script(work / f"{label}.lua", {"Authorization": f"Bearer {key}"}, args.stream)
            sides.append((label, spec, proc, port, script))
        results: dict[str, list[tuple[float, float, float]]] = {"a": [], "b": []}
        for round_ in range(args.rounds + 1):  # the first round warms both up
            before = {label: _cpu(proc.pid) for label, _, proc, _, _ in sides}
            runs = {
                label: subprocess.Popen(
                    pinned("1", _wrk(args.connections, args.seconds, script, port)),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for label, _, _, port, script in sides
            }
            outputs = {label: run.communicate()[0] for label, run in runs.items()}
            after = {label: _cpu(proc.pid) for label, _, proc, _, _ in sides}
            if round_ == 0:
                continue
            for label in ("a", "b"):
                line = next(x for x in outputs[label].splitlines() if x.startswith("BENCH_JSON "))
                summary = json.loads(line.split(" ", 1)[1])
                n = int(summary["requests"])
                failed = int(summary["non2xx"]) + int(summary["bad_body"])
                if failed:
                    raise SystemExit(f"{label}: {failed} failed requests")
                user = (after[label][0] - before[label][0]) / n * 1e6
                system = (after[label][1] - before[label][1]) / n * 1e6
                results[label].append((user + system, user, system))
        medians = {}
        for label, spec, *_ in sides:
            rows = results[label]
            total = sorted(r[0] for r in rows)
            medians[label] = total[len(total) // 2]
            rounds = " ".join(f"{r[0]:.0f} ({r[1]:.0f}+{r[2]:.0f})" for r in rows)
            print(f"{label} = {spec}: CPU µs per request (user+sys), by round: {rounds}")
            print(f"    median {medians[label]:.0f}")
        print(f"b/a CPU per request: {medians['b'] / medians['a']:.3f}")
    finally:
        for p in reversed(procs):  # the servers before their upstream: nothing in flight is cut
            subprocess.run(["kill", "--", f"-{p.pid}"], check=False, capture_output=True)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
