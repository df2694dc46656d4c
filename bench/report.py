"""The results: one table, the ratios the issue asks for, PASS/FAIL per target, and JSON."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.load import Cell, WrkResult

MODES = ("non-stream", "stream")
MB = 1024 * 1024

# The targets from the issue.
MIN_VS_LITELLM = 3.0
MIN_VS_LEAN = 0.8
MAX_ADDED_P50_MS = 1.0
MAX_TTFB_OVERHEAD_MS = 2.0
MAX_RSS_MB = 150.0
# A cell during which other processes used this much of the machine (in %) is disturbed.
DISTURBED_PCT = 5.0


@dataclass
class TargetResult:
    name: str
    label: str
    status: str = "pending"  # ok | missing | failed
    reason: str = ""
    cores: str = ""
    rss_bytes: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    # Unloaded latency: the probe alone, one connection, requests back to back (mode -> result).
    idle: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cell(self, mode: str, concurrency: int) -> Cell | None:
        for c in self.cells:
            if c.mode == mode and c.concurrency == concurrency and c.wrk is not None:
                return c
        return None

    def errors(self) -> int:
        idle = sum(sum(p["errors"].values()) for p in self.idle.values())
        return sum(c.errors for c in self.cells) + idle

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "status": self.status,
            "reason": self.reason,
            "cores": self.cores,
            "rss_bytes": self.rss_bytes,
            "rss_mb": round(self.rss_bytes / MB, 1) if self.rss_bytes is not None else None,
            "versions": self.versions,
            "idle": self.idle,
            "cells": [c.to_json() for c in self.cells],
        }


@dataclass
class Check:
    name: str
    target: str  # the threshold, as text
    value: str  # what was measured, as text
    passed: bool | None  # None: could not be evaluated (a peer is missing)
    note: str = ""  # how disturbed the cells behind it were

    @property
    def verdict(self) -> str:
        return "N/A" if self.passed is None else ("PASS" if self.passed else "FAIL")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ttfb(cell: Cell | None, key: str) -> float | None:
    if cell is None or cell.probe is None:
        return None
    value = cell.probe["ttfb_ms"].get(key)
    return None if value is None else float(value)


def _by_name(results: list[TargetResult]) -> dict[str, TargetResult]:
    return {r.name: r for r in results}


def _cell(by: dict[str, TargetResult], name: str, mode: str, concurrency: int) -> Cell | None:
    t = by.get(name)
    return t.cell(mode, concurrency) if t is not None else None


def _rps(cell: Cell | None) -> float | None:
    return cell.wrk.rps if cell is not None and cell.wrk is not None else None


def _cpu(cell: Cell | None) -> float | None:
    return cell.cpu_us_per_request if cell is not None else None


def _p50(cell: Cell | None) -> float | None:
    return cell.wrk.p50_ms if cell is not None and cell.wrk is not None else None


def _idle(t: TargetResult | None, mode: str, metric: str, key: str = "p50") -> float | None:
    if t is None or mode not in t.idle:
        return None
    value = t.idle[mode][metric].get(key)
    return None if value is None else float(value)


@dataclass
class Ratio:
    """One comparison of aitre with a peer, and how disturbed the two cells behind it were."""

    key: str
    value: float | None  # None: a side is missing
    unit: str  # "x" (a ratio) or "ms" (a difference)
    other_cpu: tuple[float | None, float | None] = (None, None)  # (aitre's cell, the peer's)

    def shown(self) -> str:
        if self.value is None:
            return "missing"
        return f"{self.value:.2f}x" if self.unit == "x" else f"{self.value:+.2f} ms"


def _other(cell: Cell | None) -> float | None:
    return cell.foreign_cpu_pct if cell is not None else None


def ratios(results: list[TargetResult], concurrencies: list[int]) -> dict[str, Ratio]:
    """aitre's throughput over LiteLLM's and lean Python's, per mode and concurrency; aitre's
    added latency and stream TTFB over direct, loaded and unloaded."""
    by = _by_name(results)
    out: dict[str, Ratio] = {}

    def add(key: str, value: float | None, unit: str, a: Cell | None = None, p: Cell | None = None) -> None:
        out[key] = Ratio(key, value, unit, (_other(a), _other(p)))

    for peer in ("litellm", "lean"):
        for mode in MODES:
            for c in concurrencies:
                ac, pc = _cell(by, "aitre", mode, c), _cell(by, peer, mode, c)
                a, p = _rps(ac), _rps(pc)
                add(f"aitre/{peer} rps {mode} c={c}", a / p if a is not None and p else None, "x", ac, pc)
    # CPU per request: the same comparison, far less disturbed by a noisy machine (informative;
    # the targets are set on throughput). Above 1: aitre spends less CPU per request.
    for peer in ("litellm", "lean"):
        for mode in MODES:
            for c in concurrencies:
                ac, pc = _cell(by, "aitre", mode, c), _cell(by, peer, mode, c)
                a, p = _cpu(ac), _cpu(pc)
                add(f"{peer}/aitre CPU per request {mode} c={c}", p / a if a and p is not None else None, "x")
    for mode in MODES:
        for c in concurrencies:
            ac, dc = _cell(by, "aitre", mode, c), _cell(by, "direct", mode, c)
            a, d = _p50(ac), _p50(dc)
            add(
                f"aitre added p50 {mode} c={c}",
                a - d if a is not None and d is not None else None,
                "ms",
                ac,
                dc,
            )
    for c in concurrencies:
        ac, dc = _cell(by, "aitre", "stream", c), _cell(by, "direct", "stream", c)
        for key in ("p50", "p99"):
            a, d = _ttfb(ac, key), _ttfb(dc, key)
            add(
                f"aitre TTFB overhead {key} c={c}",
                a - d if a is not None and d is not None else None,
                "ms",
                ac,
                dc,
            )
    for mode, metric in (("non-stream", "total_ms"), ("stream", "ttfb_ms")):
        a, d = _idle(by.get("aitre"), mode, metric), _idle(by.get("direct"), mode, metric)
        what = "p50" if mode == "non-stream" else "TTFB p50"
        add(f"aitre added {what} {mode} unloaded", a - d if a is not None and d is not None else None, "ms")
        a, d = (
            _idle(by.get("aitre"), f"paced {mode}", metric),
            _idle(by.get("direct"), f"paced {mode}", metric),
        )
        add(f"aitre added {what} {mode} paced c=8", a - d if a is not None and d is not None else None, "ms")
    return out


def low_concurrency(concurrencies: list[int]) -> int:
    """The latency targets are set at c=8 (the lowest concurrency, if 8 was not run)."""
    return 8 if 8 in concurrencies else min(concurrencies)


def _disturbance(r: Ratio, peer: str) -> str:
    a, p = r.other_cpu
    if a is None and p is None:
        return ""
    text = f"other CPU: aitre {_fmt(a, 0)}%, {peer} {_fmt(p, 0)}%"
    return text + (" (disturbed)" if max(a or 0, p or 0) >= DISTURBED_PCT else "")


def checks(results: list[TargetResult], concurrencies: list[int], r: dict[str, Ratio]) -> list[Check]:
    by = _by_name(results)
    aitre = by.get("aitre")
    low = low_concurrency(concurrencies)
    out: list[Check] = []

    def add(name: str, target: str, ratio: Ratio, ok: bool | None, peer: str) -> None:
        out.append(Check(name, target, ratio.shown(), ok, _disturbance(ratio, peer)))

    for peer, floor, label in (("litellm", MIN_VS_LITELLM, "LiteLLM"), ("lean", MIN_VS_LEAN, "lean Python")):
        for mode in MODES:
            for c in concurrencies:
                ratio = r[f"aitre/{peer} rps {mode} c={c}"]
                v = ratio.value
                add(
                    f"throughput vs {label}, {mode}, c={c}",
                    f">= {floor:g}x",
                    ratio,
                    _cmp(v, floor, True),
                    peer,
                )

    # Latency targets at concurrency 8, measured paced below saturation (see measure_idle); the
    # saturated wrk cells are in the ratios table as "added p50 ... c=8".
    # Each latency check also says what nginx's proxy_pass adds on the same machine: the floor of
    # one proxy hop (on a virtual machine, the cross-core wake-ups alone can take most of 1 ms).
    def floor_note(mode: str, metric: str) -> str:
        paced = f"paced {mode}"
        n, d = _idle(by.get("nginx"), paced, metric), _idle(by.get("direct"), paced, metric)
        return "" if n is None or d is None else f"nginx proxy_pass: {n - d:+.2f} ms"

    for mode, metric in (("non-stream", "total_ms"), ("stream", "ttfb_ms")):
        what = "p50" if mode == "non-stream" else "TTFB p50"
        ratio = r[f"aitre added {what} {mode} paced c=8"]
        ok = _cmp(ratio.value, MAX_ADDED_P50_MS, False)
        out.append(
            Check(
                f"added p50 latency over direct, {mode}, c=8 paced",
                f"<= {MAX_ADDED_P50_MS:g} ms",
                ratio.shown(),
                ok,
                floor_note(mode, metric),
            )
        )
    ratio = r["aitre added TTFB p50 stream paced c=8"]
    ok = _cmp(ratio.value, MAX_TTFB_OVERHEAD_MS, False)
    out.append(
        Check(
            "stream TTFB overhead over direct (p50), c=8 paced",
            f"<= {MAX_TTFB_OVERHEAD_MS:g} ms",
            ratio.shown(),
            ok,
            floor_note("stream", "ttfb_ms"),
        )
    )
    _ = low
    for name in ("aitre", "aitre-w2"):
        t = by.get(name)
        measured = t is not None and t.status == "ok"
        errors = t.errors() if t is not None else 0
        out.append(
            Check(
                f"no errors ({name})",
                "0",
                str(errors) if measured else "missing",
                (errors == 0) if measured else None,
            )
        )
    rss = aitre.rss_bytes if aitre is not None and aitre.status == "ok" else None
    out.append(
        Check(
            "aitre RSS after the run (1 worker)",
            f"<= {MAX_RSS_MB:g} MB",
            "missing" if rss is None else f"{rss / MB:.1f} MB",
            None if rss is None else rss / MB <= MAX_RSS_MB,
        )
    )
    return out


def _cmp(value: float | None, bound: float, at_least: bool) -> bool | None:
    if value is None:
        return None
    return value >= bound if at_least else value <= bound


def results_table(results: list[TargetResult]) -> Table:
    t = Table(title="aitre benchmark (server under test on core 0; upstream, wrk and probe on core 1)")
    for col, justify in (
        ("target", "left"),
        ("mode", "left"),
        ("c", "right"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("TTFB p50", "right"),
        ("TTFB p99", "right"),
        ("CPU µs/req", "right"),
        ("errors", "right"),
        ("RSS MB", "right"),
        ("other CPU %", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for res in results:
        if res.status != "ok" and not res.cells:
            t.add_row(res.name, f"[red]{res.status.upper()}[/red]: {res.reason[:90]}", *[""] * 10)
            t.add_section()
            continue
        for i, cell in enumerate(res.cells):
            w = cell.wrk
            rss = _fmt(res.rss_bytes / MB, 1) if res.rss_bytes is not None and i == 0 else ""
            errs = cell.errors
            t.add_row(
                res.name if i == 0 else "",
                cell.mode,
                str(cell.concurrency),
                _fmt(w.rps, 0) if w else "-",
                _fmt(w.p50_ms) if w else "-",
                _fmt(w.p99_ms) if w else "-",
                _fmt(_ttfb(cell, "p50")),
                _fmt(_ttfb(cell, "p99")),
                _fmt(cell.cpu_us_per_request, 0),
                f"[red]{errs}[/red]" if errs else "0",
                rss,
                _fmt(cell.foreign_cpu_pct, 0),
            )
        if res.status != "ok":
            t.add_row("", f"[red]{res.status.upper()}[/red]: {res.reason[:90]}", *[""] * 10)
        t.add_section()
    return t


def idle_table(results: list[TargetResult]) -> Table:
    t = Table(title="unloaded latency (probe alone: 1 connection, requests back to back), ms")
    for col in ("target", "non-stream p50", "non-stream p99", "stream TTFB p50", "stream TTFB p99"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for res in results:
        if not res.idle:
            continue
        t.add_row(
            res.name,
            _fmt(_idle(res, "non-stream", "total_ms")),
            _fmt(_idle(res, "non-stream", "total_ms", "p99")),
            _fmt(_idle(res, "stream", "ttfb_ms")),
            _fmt(_idle(res, "stream", "ttfb_ms", "p99")),
        )
    return t


def ratios_table(r: dict[str, Ratio]) -> Table:
    t = Table(title="aitre against its peers")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("other CPU % (aitre / peer)", justify="right")
    for ratio in r.values():
        a, p = ratio.other_cpu
        t.add_row(ratio.key, ratio.shown(), "" if a is None and p is None else f"{_fmt(a, 0)} / {_fmt(p, 0)}")
    return t


def checks_table(items: list[Check]) -> Table:
    t = Table(title="targets")
    for col in ("check", "target", "measured", "verdict", "note"):
        t.add_column(col)
    colour = {"PASS": "green", "FAIL": "red", "N/A": "yellow"}
    for c in items:
        t.add_row(c.name, c.target, c.value, f"[{colour[c.verdict]}]{c.verdict}[/]", c.note)
    return t


def print_report(
    console: Console, results: list[TargetResult], r: dict[str, Ratio], items: list[Check], notes: list[str]
) -> None:
    console.print(results_table(results))
    console.print(
        "TTFB: request written -> first body byte, from a paced probe (1 connection) running "
        "alongside wrk; 'other CPU %': CPU used by processes outside the benchmark during the "
        "cell, in % of both cores (high values mean a disturbed cell)."
    )
    console.print(idle_table(results))
    console.print(ratios_table(r))
    console.print(checks_table(items))
    passed = sum(1 for c in items if c.passed)
    console.print(f"{passed}/{len(items)} targets met")
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def write_json(
    out_dir: Path,
    meta: dict[str, Any],
    results: list[TargetResult],
    r: dict[str, Ratio],
    items: list[Check],
    *,
    latest: bool = True,
) -> Path:
    """`<timestamp>.json`, and the same as latest.json unless `latest` is False (an interrupted
    run must not replace the last complete one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": meta,
        "targets": [res.to_json() for res in results],
        "ratios": {
            k: {"value": v.value, "unit": v.unit, "other_cpu_pct_aitre_peer": list(v.other_cpu)}
            for k, v in r.items()
        },
        "checks": [
            {"check": c.name, "target": c.target, "measured": c.value, "verdict": c.verdict, "note": c.note}
            for c in items
        ],
    }
    text = json.dumps(doc, indent=2)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(meta.get("started_at", time.time())))
    path = out_dir / (f"{stamp}.json" if latest else f"{stamp}-partial.json")
    path.write_text(text)
    if latest:
        (out_dir / "latest.json").write_text(text)
    return path


def load_json(path: Path) -> tuple[dict[str, Any], list[TargetResult]]:
    """A results file back into objects, to print its report again."""
    doc = json.loads(path.read_text())
    results: list[TargetResult] = []
    for t in doc["targets"]:
        cells = []
        for c in t["cells"]:
            fields = {k: v for k, v in c.items() if k not in ("errors", "cpu_us_per_request")}
            wrk = fields.pop("wrk")
            cells.append(Cell(**fields, wrk=WrkResult(**wrk) if wrk else None))
        results.append(
            TargetResult(
                t["name"],
                t["label"],
                t["status"],
                t["reason"],
                t["cores"],
                t["rss_bytes"],
                t["versions"],
                cells,
                t.get("idle", {}),
            )
        )
    return doc["meta"], results


def main() -> None:
    """`python -m bench.report [bench/results/latest.json]`: print a saved run's report again."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json"
    meta, results = load_json(path)
    concurrencies = list(meta["options"]["concurrency"])
    r = ratios(results, concurrencies)
    print_report(
        Console(width=None if sys.stdout.isatty() else 150),
        results,
        r,
        checks(results, concurrencies, r),
        list(meta.get("notes", [])),
    )


if __name__ == "__main__":
    main()
