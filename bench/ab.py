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
import subprocess
from pathlib import Path

from bench.load import write_script
from bench.procs import free_port, pinned
from bench.scaffold import Scratch, scratch, wait_healthy


def _cpu(pid: int) -> tuple[float, float]:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    times = [p.cpu_times() for p in procs]
    return sum(t.user for t in times), sum(t.system for t in times)


def _start(spec: str, sc: Scratch, folder: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    folder.mkdir(parents=True)
    if spec == "lean":
        return sc.start_lean(port, "0"), port, "sk-lean"
    name, _, settings = spec.partition(":")
    name, _, src = name.partition("@")
    if name != "aitre":
        raise SystemExit(f"unknown target {spec!r}: lean, aitre, aitre:AITRE_X=Y,..., aitre@SRC")
    env = [e for e in settings.split(",") if e]
    if src:
        env.append(f"PYTHONPATH={Path(src).resolve()}")
    proc, key = sc.start_aitre(folder, port, env, pinned("0", []))
    return proc, port, key


def _wrk(connections: int, seconds: int, script: Path, port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with scratch("aitre-ab-") as sc:
        sides = []
        for label, spec in (("a", args.a), ("b", args.b)):
            proc, port, key = _start(spec, sc, sc.work / label)
            wait_healthy(port, "/health" if spec == "lean" else "/readyz")
            script = write_script(sc.work / f"{label}.lua", {"Authorization": f"Bearer {key}"}, args.stream)
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


if __name__ == "__main__":
    main()
