"""SIGTERM: no new connections, in-flight streams finish within the grace period, logs and the
ledger are flushed, exit code 0. Past the grace period, cut streams are still settled."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.billing.helpers import new_user_key
from tests.support.processes import Gateway, Simulator, channel_spec


def _stream(gw: Gateway, key: str, model: str, out: dict[str, str], started: threading.Event) -> None:
    try:
        with gw.chat_stream(key, model, max_tokens=8) as resp:
            out["rid"] = resp.headers["x-request-id"]
            started.set()
            out["body"] = "".join(resp.iter_text())
    except httpx.HTTPError as exc:
        out["error"] = repr(exc)
        started.set()


def _run(
    simulator: Simulator, tmp_path: Path, grace: str, delay: str
) -> tuple[Gateway, dict[str, str], int, float]:
    gw = Gateway(tmp_path / "gw", AITRE_SIMULATOR_ENABLED="false", AITRE_SHUTDOWN_GRACE_SECONDS=grace)
    slow = channel_spec("slow", f"{simulator.url}/f/chunk_delay={delay}/v1", "slow-model", "gpt-4o-mini")
    gw.apply({"prices": {"*": {"per_call": "0.001"}}, "channels": [slow]})
    gw.start()
    key = new_user_key(gw, "lc", 50_000_000)
    out: dict[str, str] = {}
    started = threading.Event()
    t = threading.Thread(target=_stream, args=(gw, key, "slow-model", out, started))
    t.start()
    assert started.wait(10)
    t0 = time.monotonic()
    gw.proc.signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):  # no new connections once stopping
        httpx.get(gw.url + "/healthz", timeout=2)
    code = gw.proc.wait(30)
    elapsed = time.monotonic() - t0
    t.join(10)
    return gw, out, code, elapsed


def test_sigterm_lets_streams_finish_and_flushes(simulator: Simulator, tmp_path: Path) -> None:
    gw, out, code, _ = _run(simulator, tmp_path, grace="30", delay="0.2")
    assert code == 0
    assert out["body"].rstrip().endswith("data: [DONE]")
    rows = gw.sql("SELECT status_code, quota FROM usage_logs WHERE request_id = ?", (out["rid"],))
    assert rows and rows[0]["status_code"] == 200 and rows[0]["quota"] == 500
    kinds = {r["kind"] for r in gw.sql("SELECT kind FROM ledger WHERE hold_id = ?", (out["rid"],))}
    assert kinds in ({"reserve", "settle"}, {"charge"})


def test_grace_period_is_bounded_and_cut_streams_are_settled(simulator: Simulator, tmp_path: Path) -> None:
    gw, out, code, elapsed = _run(simulator, tmp_path, grace="1", delay="2")
    assert code == 0
    assert elapsed < 8
    assert "[DONE]" not in out.get("body", "")
    rows = gw.sql("SELECT status_code FROM usage_logs WHERE request_id = ?", (out["rid"],))
    assert rows and rows[0]["status_code"] == 503
    kinds = {r["kind"] for r in gw.sql("SELECT kind FROM ledger WHERE hold_id = ?", (out["rid"],))}
    assert kinds in ({"reserve", "settle"}, {"charge"}, {"reserve", "refund"})
