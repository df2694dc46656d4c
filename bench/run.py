"""One command that measures aitre against its peers: `.venv/bin/python -m bench.run [--quick]`.

Starts the fake nginx upstream, then, one target at a time: start it pinned to the server core,
health-check it, verify it returns the canned answer, measure non-stream and stream at each
concurrency (warm-up, then wrk; the TTFB probe alongside wrk for streams), record its RSS, stop
it. Prints one table, the ratios and PASS/FAIL per target, and writes bench/results/*.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from bench import nginx, preflight, report
from bench.load import Cell, finish_probe, paced_result, run_wrk, start_probe, write_script
from bench.procs import (
    ForeignCpu,
    StartError,
    StealMeter,
    Supervisor,
    free_port,
    tree_cpu_seconds,
    wait_healthy,
    wait_until_quiet,
)
from bench.report import DISTURBED_PCT, TargetResult
from bench.targets import TARGETS, Context, Endpoint, TargetSpec, Unavailable, verify

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
# Rich would wrap the table at 80 columns when piped to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 150)


def say(message: str) -> None:
    console.print(f"[bold cyan]bench[/bold cyan] {message}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [t.name for t in TARGETS]
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 s per cell after a 1 s warm-up")
    ap.add_argument("--duration", type=int, default=10, help="seconds measured per cell [10]")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each cell [2]")
    ap.add_argument("--concurrency", default="8,64", help="comma-separated connection counts [8,64]")
    ap.add_argument("--targets", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    ap.add_argument("--probe-rate", type=float, default=100.0, help="TTFB probe requests/s at most [100]")
    ap.add_argument(
        "--paced-rate", type=float, default=200.0, help="requests/s of the paced c=8 latency run [200]"
    )
    ap.add_argument(
        "--paced-rounds",
        type=int,
        default=5,
        help="rounds of the paced latency run, each as long as an unloaded probe; the report "
        "takes the median round [5; 1 with --quick]",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each cell, wait up to this many seconds for other jobs on the machine to go "
        "quiet (0: don't) [20]",
    )
    ap.add_argument(
        "--busy-retries",
        type=int,
        default=1,
        help=f"measure a cell again (this many times at most) when other jobs used >= {DISTURBED_PCT:g}%% "
        "of the machine during it, keeping the least disturbed attempt [1; 0 with --quick]",
    )
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch dir (configs, logs, data)")
    ap.add_argument("--strict", action="store_true", help="exit 1 unless every target is met")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3, 1
        args.quiet_wait = min(args.quiet_wait, 10.0)
        args.busy_retries = 0
        args.paced_rounds = 1
    args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    wanted = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        ap.error(f"unknown targets: {', '.join(unknown)} (known: {', '.join(names)})")
    args.targets = wanted
    if args.duration < 1 or args.warmup < 0:
        ap.error("--duration must be >= 1 and --warmup >= 0 (whole seconds: wrk takes no fractions)")
    return args


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    # Treated like Ctrl-C, so the `finally` that stops every server runs.
    raise KeyboardInterrupt


def _tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def _meta(args: argparse.Namespace, server_cores: str, load_cores: str) -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "started_at": time.time(),
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pinning": {"server": server_cores, "upstream_and_load": load_cores, "aitre-w2": "both"},
        "options": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "targets": args.targets,
            "probe_rate": args.probe_rate,
            "quick": args.quick,
        },
        "versions": {
            "python": platform.python_version(),
            "nginx": _tool_version(["nginx", "-v"]),
            "wrk": _tool_version(["wrk", "--version"]),
            "git": _tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(
                subprocess.run(
                    ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
            ),
        },
        "loadavg_start": os.getloadavg(),
    }


def measure_cell(
    ctx: Context, ep: Endpoint, spec: TargetSpec, stream: bool, c: int, args: argparse.Namespace
) -> Cell:
    mode = "stream" if stream else "non-stream"
    cell = Cell(spec.name, mode, c)
    script = write_script(ctx.work / f"{spec.name}-{mode}.lua", ep.headers, stream)
    if args.quiet_wait > 0:
        cell.busy_before_pct = round(wait_until_quiet(args.quiet_wait), 1)
    if args.warmup:
        run_wrk(ep.url, script, concurrency=c, duration=args.warmup, cores=ctx.load_cores)
    meter = ForeignCpu(list(ctx.sup.servers), ep.helpers)
    cpu0 = tree_cpu_seconds(ep.server.pid)
    probe = (
        start_probe(ep.url, ep.headers, duration=args.duration, rate=args.probe_rate, cores=ctx.load_cores)
        if stream
        else None
    )
    try:
        cell.wrk = run_wrk(ep.url, script, concurrency=c, duration=args.duration, cores=ctx.load_cores)
    finally:
        if probe is not None:
            try:
                cell.probe = finish_probe(probe, timeout=30)
            except RuntimeError as exc:
                cell.problems.append(str(exc))
    cell.server_cpu_s = round(tree_cpu_seconds(ep.server.pid) - cpu0, 3)
    cell.foreign_cpu_pct = round(meter.stop(), 1)
    if not ep.server.alive():
        cell.problems.append(f"server exited during the cell (log: {ep.server.log})")
    return cell


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


# A paced round during which the VM lost more than this share of its CPU time to other guests is
# measured again (in all, at most three times the rounds asked for are run).
STEAL_MAX_PCT = 5.0


def measure_idle(
    ctx: Context, ep: Endpoint, args: argparse.Namespace, name: str = ""
) -> dict[str, dict[str, Any]]:
    """Latency without queueing: the probe alone on one connection, requests back to back
    ("non-stream", "stream"); and at concurrency 8 below saturation: 8 connections sending
    `--paced-rate` requests/s in all ("paced non-stream", "paced stream"). With wrk's closed
    loop, latency at c=8 is mostly queueing (c / throughput) for any Python server; the paced
    run measures what a request costs when 8 are in flight but the server keeps up, in
    `--paced-rounds` rounds whose median is reported; a round during a burst of steal time
    (`STEAL_MAX_PCT`) is measured again, the same for every target, and its steal is kept in the
    result (a slow round is then a neighbour's, not the server's)."""
    secs = float(min(3, args.duration))
    out: dict[str, dict[str, Any]] = {}
    for stream in (False, True):
        mode = "stream" if stream else "non-stream"
        proc = start_probe(
            ep.url, ep.headers, duration=secs, rate=1000, cores=ctx.load_cores, stream=stream, margin=0
        )
        out[mode] = finish_probe(proc, timeout=secs + 30)
        rounds: list[dict[str, Any]] = []
        wanted = max(1, args.paced_rounds)
        for _ in range(wanted * 3):  # rounds under a burst of steal time are measured again
            meter = StealMeter()
            proc = start_probe(
                ep.url,
                ep.headers,
                duration=secs,
                rate=args.paced_rate,
                cores=ctx.load_cores,
                stream=stream,
                margin=0,
                connections=8,
            )
            result = finish_probe(proc, timeout=secs + 30)
            result["steal_pct"] = meter.stop()
            rounds.append(result)
            if sum(r["steal_pct"] < STEAL_MAX_PCT for r in rounds) >= wanted:
                break
        quiet = sum(r["steal_pct"] < STEAL_MAX_PCT for r in rounds)
        if quiet < wanted:
            say(
                f"[yellow]{name} {mode} paced: only {quiet} of {len(rounds)} rounds "
                "without steal time[/yellow]"
            )
        out[f"paced {mode}"] = paced_result(rounds, wanted, STEAL_MAX_PCT)
    return out


def measure_target(ctx: Context, spec: TargetSpec, args: argparse.Namespace, res: TargetResult) -> None:
    """Fill `res` in place, so that an interrupted run still reports the cells it measured."""
    say(f"[bold]{spec.name}[/bold]: starting ({spec.label})")
    try:
        ep = spec.start(ctx)
    except Unavailable as exc:
        res.status, res.reason = "missing", str(exc)
        say(f"[red]{spec.name} is missing[/red]: {exc}")
        return
    res.cores, res.versions = ep.cores, ep.versions
    try:
        verify(ep)
        say(f"{spec.name}: verified (canned completion and a full stream ending in [DONE])")
        for stream in (False, True):
            for c in args.concurrency:
                cell = measure_cell(ctx, ep, spec, stream, c, args)
                # On a shared machine another job can land in the middle of a cell; measure it
                # again (up to --busy-retries times) and keep the least disturbed attempt.
                for _ in range(args.busy_retries):
                    if (cell.foreign_cpu_pct or 0) < DISTURBED_PCT:
                        break
                    say(f"{spec.name} {cell.mode} c={c}: other jobs used {cell.foreign_cpu_pct}%; again")
                    again = measure_cell(ctx, ep, spec, stream, c, args)
                    again.attempts = cell.attempts + 1
                    if (again.foreign_cpu_pct or 0) < (cell.foreign_cpu_pct or 0):
                        cell = again
                    else:
                        cell.attempts = again.attempts
                res.cells.append(cell)
                w = cell.wrk
                ttfb = cell.probe["ttfb_ms"]["p50"] if cell.probe else None
                say(
                    f"{spec.name} {cell.mode} c={c}: "
                    + (
                        f"{w.rps:.0f} req/s, p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms"
                        if w
                        else "no result"
                    )
                    + (f", TTFB p50 {ttfb:.2f} ms" if ttfb is not None else "")
                    + f", errors {cell.errors}, other CPU {cell.foreign_cpu_pct}%"
                )
                if not ep.server.alive():
                    raise Unavailable(f"server exited (log: {ep.server.log})")
        # After the loaded cells, so that the server is warm (LiteLLM imports lazily on first use).
        res.idle = measure_idle(ctx, ep, args, spec.name)
        say(
            f"{spec.name} unloaded: p50 {_ms(res.idle['non-stream']['total_ms']['p50'])}, "
            f"stream TTFB p50 {_ms(res.idle['stream']['ttfb_ms']['p50'])}"
        )
        res.rss_bytes = ep.server.rss_bytes()
        res.status = "ok"
    except (Unavailable, RuntimeError, subprocess.TimeoutExpired) as exc:
        res.status, res.reason = "failed", str(exc)
        say(f"[red]{spec.name} failed[/red]: {exc}")
    finally:
        if ep.owned:
            ctx.sup.stop(ep.server)


def run(args: argparse.Namespace) -> int:
    preflight.ensure_tools(say)
    server_cores, load_cores, core_note = preflight.cores()
    notes = [core_note] if core_note else []
    # The harness itself (its Python, psutil sampling) stays off the server core.
    os.sched_setaffinity(0, {int(load_cores)})
    litellm_bin, litellm_reason = (None, "not selected")
    if "litellm" in args.targets:
        litellm_bin, litellm_reason = preflight.ensure_litellm(BENCH / ".venv-litellm", say)
        if litellm_bin is None:
            say(f"[yellow]LiteLLM unavailable[/yellow]: {litellm_reason}; it will be reported as missing")
    meta = _meta(args, server_cores, load_cores)
    work = Path(tempfile.mkdtemp(prefix="aitre-bench-"))
    sup = Supervisor(work / "logs")
    results: list[TargetResult] = []
    interrupted = False
    # Explicit handlers: a shell starts background jobs with SIGINT ignored, and Python then
    # raises no KeyboardInterrupt; SIGTERM and SIGHUP would otherwise kill us without cleanup.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in stop_signals}
    try:
        port = free_port()
        prefix = work / "nginx-upstream"
        conf = nginx.write_upstream(prefix, port)
        upstream = sup.start("nginx-upstream", nginx.command(conf, prefix), cores=load_cores)
        wait_healthy(upstream, f"http://127.0.0.1:{port}/health", timeout=10)
        say(f"fake upstream: nginx on 127.0.0.1:{port} (core {load_cores})")
        ctx = Context(
            repo=REPO,
            work=work,
            sup=sup,
            upstream=upstream,
            upstream_port=port,
            server_cores=server_cores,
            load_cores=load_cores,
            litellm_bin=litellm_bin,
            litellm_reason=litellm_reason,
        )
        for spec in TARGETS:
            if spec.name in args.targets:
                results.append(TargetResult(spec.name, spec.label))
                measure_target(ctx, spec, args, results[-1])
    except KeyboardInterrupt:
        interrupted = True
        for res in results:
            if res.status == "pending":
                res.status, res.reason = "failed", "interrupted"
        say("[yellow]interrupted: stopping every server; partial results follow[/yellow]")
    except StartError as exc:
        say(f"[red]the fake upstream did not start[/red]: {exc}")
        return 2
    finally:
        sup.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    meta["finished_at"] = time.time()
    meta["interrupted"] = interrupted
    meta["loadavg_end"] = os.getloadavg()
    busy_cells = [
        f"{c.target} {c.mode} c={c.concurrency}"
        for r in results
        for c in r.cells
        if c.foreign_cpu_pct is not None and c.foreign_cpu_pct >= DISTURBED_PCT
    ]
    if busy_cells:
        notes.append(
            f"other processes used >= {DISTURBED_PCT:g}% of the machine during: "
            + ", ".join(busy_cells)
            + " (those numbers are pessimistic; rerun on a quiet machine)"
        )
    problems = [
        f"{c.target} {c.mode} c={c.concurrency}: {p}" for r in results for c in r.cells for p in c.problems
    ]
    notes.extend(problems)
    r = report.ratios(results, args.concurrency)
    items = report.checks(results, args.concurrency, r)
    report.print_report(console, results, r, items, notes)
    meta["notes"] = notes
    path = report.write_json(args.results_dir, meta, results, r, items, latest=not interrupted)
    say(f"results written to {path}" + ("" if interrupted else " (and latest.json)"))
    failed = any(res.status != "ok" for res in results)
    if args.keep_work or failed:
        say(f"scratch dir kept: {work} (logs in {work / 'logs'})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if args.strict and not all(c.passed for c in items) else 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
