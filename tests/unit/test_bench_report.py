"""The benchmark's arithmetic: CPU per request, the ratios and checks built from cells, and a
saved run read back the same."""

from __future__ import annotations

from pathlib import Path

from bench.load import Cell, WrkResult, median_of_rounds, paced_result
from bench.report import TargetResult, checks, load_json, ratios, write_json


def _wrk(requests: int, rps: float, p50: float = 1.0) -> WrkResult:
    return WrkResult(requests, 10.0, rps, p50, p50, p50, p50, p50, {}, 0, 0)


def _target(name: str, rps: float, cpu_s: float) -> TargetResult:
    t = TargetResult(name, name, status="ok")
    for mode in ("non-stream", "stream"):
        cell = Cell(name, mode, 8, wrk=_wrk(int(rps * 10), rps), server_cpu_s=cpu_s)
        if mode == "stream":
            cell.probe = {"n": 100, "errors": {}, "ttfb_ms": {"p50": 1.0, "p99": 2.0}}
        t.cells.append(cell)
    return t


def test_cpu_per_request_counts_the_probes_requests_too() -> None:
    lean, aitre = _target("lean", 2000, 8.0), _target("aitre", 1800, 6.0)
    assert lean.cells[0].cpu_us_per_request == 8.0 / 20000 * 1e6  # 400 µs
    assert aitre.cells[1].cpu_us_per_request == 6.0 / (18000 + 100) * 1e6
    assert Cell("x", "stream", 8).cpu_us_per_request is None
    r = ratios([lean, aitre], [8])
    assert r["aitre/lean rps non-stream c=8"].value == 0.9
    assert r["lean/aitre CPU per request non-stream c=8"].value == (8.0 / 20000) / (6.0 / 18000)
    assert r["litellm/aitre CPU per request non-stream c=8"].value is None  # missing, not made up


def test_a_saved_run_reads_back(tmp_path: Path) -> None:
    results = [_target("lean", 2000, 8.0), _target("aitre", 1800, 6.0)]
    r = ratios(results, [8])
    path = write_json(tmp_path, {"started_at": 0}, results, r, checks(results, [8], r), latest=True)
    _, back = load_json(path)
    assert [c.cpu_us_per_request for t in back for c in t.cells] == [
        c.cpu_us_per_request for t in results for c in t.cells
    ]


def test_paced_rounds_report_the_median_round_and_count_everything() -> None:
    def probe(p50: float, n: int = 600, errors: dict[str, int] | None = None) -> dict[str, object]:
        return {
            "n": n,
            "errors": errors or {},
            "ttfb_ms": {"p50": p50, "p99": p50 * 2},
            "total_ms": {"p50": p50},
        }

    rounds = [probe(0.9), probe(3.4, errors={"timeout": 1}), probe(1.0), probe(0.95, errors={"timeout": 2})]
    combined = median_of_rounds(rounds)  # type: ignore[arg-type]
    assert combined["ttfb_ms"]["p50"] == 0.975  # the slow round moves it little
    assert combined["ttfb_ms"]["p99"] == 1.95
    assert combined["n"] == 2400 and combined["errors"] == {"timeout": 3}  # nothing dropped


def test_paced_rounds_during_steal_are_kept_but_not_counted() -> None:
    def probe(p50: float, steal: float) -> dict[str, object]:
        return {"n": 600, "errors": {}, "ttfb_ms": {"p50": p50}, "total_ms": {"p50": p50}, "steal_pct": steal}

    rounds = [probe(0.9, 0.0), probe(3.4, 23.0), probe(1.0, 0.4), probe(0.95, 1.0)]
    result = paced_result(rounds, wanted=3, steal_max_pct=5.0)  # type: ignore[arg-type]
    assert result["ttfb_ms"]["p50"] == 0.95  # the median of the three quiet rounds
    assert [r["p50_ms"] for r in result["all_rounds"]] == [0.9, 3.4, 1.0, 0.95]  # every round kept
    assert [r["used"] for r in result["all_rounds"]] == [True, False, True, True]
    assert result["all_rounds"][1]["steal_pct"] == 23.0
    # Too few quiet rounds: all of them count, rather than a median of too few.
    assert paced_result(rounds, wanted=4, steal_max_pct=5.0)["ttfb_ms"]["p50"] == 0.975  # type: ignore[arg-type]
