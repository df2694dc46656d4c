"""Load for one cell: wrk for throughput and latency, the TTFB probe next to it for streams.

wrk runs with one thread on the load core (`-t1`: a second thread would only compete with the
upstream nginx for the same core). A generated Lua script sets the POST body and headers, checks
every response (status; a complete JSON or a stream ending in `data: [DONE]`) and prints its
summary as one JSON line, so nothing is scraped from wrk's human output.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import canned
from bench.procs import pinned

_MARK = "BENCH_JSON "

_LUA = r"""
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local want_stream = %(stream)s
-- Globals, so that done() can read each thread's counts with thread:get().
non2xx = 0
bad_body = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif want_stream then
    if not string.find(string.sub(body, -40), "data: %%[DONE%%]%%s*$") then
      bad_body = bad_body + 1
    end
  elseif not string.find(body, '"choices"', 1, true) then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  local n2, bad = 0, 0
  for _, t in ipairs(threads) do
    n2 = n2 + t:get("non2xx")
    bad = bad + t:get("bad_body")
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"timeout":%%d,"non2xx":%%d,"bad_body":%%d,"mean_us":%%.1f,"max_us":%%.1f,' ..
    '"p50_us":%%.1f,"p90_us":%%.1f,"p99_us":%%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout,
    n2, bad, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for ASCII text


def write_script(path: Path, headers: dict[str, str], stream: bool) -> Path:
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    path.write_text(
        _LUA
        % {
            "body": canned.request_body(stream).decode(),
            "headers": lines,
            "stream": "true" if stream else "false",
            "mark": _MARK,
        }
    )
    return path


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: dict[str, int]
    non2xx: int
    bad_body: int

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non2xx + self.bad_body


@dataclass
class Cell:
    target: str
    mode: str  # "non-stream" | "stream"
    concurrency: int
    wrk: WrkResult | None = None
    probe: dict[str, Any] | None = None  # TTFB probe result (streams only)
    foreign_cpu_pct: float | None = None  # CPU used by processes that are not part of the run
    busy_before_pct: float | None = None  # machine busy % when the cell started (after waiting)
    attempts: int = 1  # > 1: measured again because other jobs disturbed it
    server_cpu_s: float | None = None  # CPU the server (all its processes) used during the cell
    problems: list[str] = field(default_factory=list)

    @property
    def cpu_us_per_request(self) -> float | None:
        """The server's CPU time per request served (wrk's and the probe's): unlike req/s, this
        hardly moves when other jobs or the hypervisor take the core away for a while."""
        served = (self.wrk.requests if self.wrk else 0) + (int(self.probe.get("n", 0)) if self.probe else 0)
        if self.server_cpu_s is None or served == 0:
            return None
        return self.server_cpu_s / served * 1e6

    @property
    def errors(self) -> int:
        n = self.wrk.errors if self.wrk else 0
        if self.probe:
            n += sum(self.probe["errors"].values())
        return n

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = self.errors
        out["cpu_us_per_request"] = self.cpu_us_per_request
        return out


def run_wrk(
    url: str,
    script: Path,
    *,
    concurrency: int,
    duration: int,
    cores: str | None,
    timeout_s: int = 10,
) -> WrkResult:
    # A request slower than `timeout_s` counts as a (timeout) error. 10 s is a whole default cell:
    # a slow server's multi-second latencies are reported as latency, not as errors.
    cmd = pinned(
        cores,
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            f"--timeout={timeout_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        detail = proc.stderr.strip() or proc.stdout[-500:]
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {detail}")
    d = json.loads(line[len(_MARK) :])
    secs = d["duration_us"] / 1e6
    return WrkResult(
        requests=d["requests"],
        duration_s=round(secs, 3),
        rps=d["requests"] / secs if secs else 0.0,
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        mean_ms=d["mean_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        socket_errors={k: d[k] for k in ("connect", "read", "write", "timeout")},
        non2xx=d["non2xx"],
        bad_body=d["bad_body"],
    )


def start_probe(
    url: str,
    headers: dict[str, str],
    *,
    duration: float,
    rate: float,
    cores: str | None,
    stream: bool = True,
    margin: float | None = None,
    connections: int = 1,
) -> subprocess.Popen[str]:
    """The TTFB probe. For a stream cell it runs alongside wrk, starting a little after it and
    stopping a little before, so that every probe request sees the full wrk load."""
    if margin is None:
        margin = min(0.5, duration / 10)
    cmd = [
        sys.executable,
        "-m",
        "bench.probe",
        "--url",
        url,
        *(["--stream"] if stream else []),
        f"--rate={rate}",
        f"--duration={duration - 2 * margin}",
        f"--delay={margin}",
        f"--connections={connections}",
        *(arg for k, v in headers.items() for arg in ("--header", f"{k}: {v}")),
    ]
    return subprocess.Popen(
        pinned(cores, cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def finish_probe(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("TTFB probe did not finish") from None
    if proc.returncode != 0:
        raise RuntimeError(f"TTFB probe failed (exit {proc.returncode}): {err.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def median_of_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Several probe runs as one: requests and errors summed, each percentile the median of the
    rounds' (a round that a neighbour's burst of steal time slowed moves the median little,
    where one long run would carry it whole)."""
    if not rounds:
        raise ValueError("no probe rounds")
    errors: dict[str, int] = {}
    for r in rounds:
        for kind, count in r.get("errors", {}).items():
            errors[kind] = errors.get(kind, 0) + int(count)
    out: dict[str, Any] = {"n": sum(int(r.get("n", 0)) for r in rounds), "errors": errors}
    for metric in ("ttfb_ms", "total_ms"):
        keys = {k for r in rounds for k in r.get(metric, {})}
        out[metric] = {}
        for key in sorted(keys):
            values = [float(v) for r in rounds if (v := r.get(metric, {}).get(key)) is not None]
            out[metric][key] = statistics.median(values) if values else None
    return out


def paced_result(rounds: list[dict[str, Any]], wanted: int, steal_max_pct: float) -> dict[str, Any]:
    """The paced rounds of one mode as one result: the median of the rounds with less steal
    than `steal_max_pct` if there are `wanted` of them, else of all; every round is kept in
    `all_rounds` (p50, steal, whether it was counted)."""
    quiet = [r for r in rounds if r["steal_pct"] < steal_max_pct]
    used = quiet if len(quiet) >= wanted else rounds
    out = median_of_rounds(used)
    out["all_rounds"] = [
        {
            "p50_ms": r.get("ttfb_ms", {}).get("p50"),
            "steal_pct": round(r["steal_pct"], 1),
            "used": any(r is u for u in used),
        }
        for r in rounds
    ]
    return out
