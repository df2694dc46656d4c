"""SIGKILL with requests in flight, then restart: the journal is replayed, interrupted
reservations are refunded, and the ledger proves no money was created or lost."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.billing.helpers import balance, ledger_sum, new_user_key
from tests.support.processes import Gateway, Simulator, channel_spec, wait_until

START = 50_000_000


errors: list[str] = []


def _client_calls(
    gw: Gateway, key: str, model: str, stream: bool, results: list[tuple[str, bool]], stop: threading.Event
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        "max_tokens": 5,
    }
    headers = {"Authorization": f"Bearer {key}"}
    while not stop.is_set():
        rid, complete = "", False
        try:
            with httpx.stream(
                "POST", gw.api + "/chat/completions", json=body, headers=headers, timeout=10
            ) as resp:
                rid = resp.headers.get("x-request-id", "")
                text = "".join(resp.iter_text())
                complete = resp.status_code == 200 and (
                    text.rstrip().endswith("[DONE]") if stream else '"usage"' in text
                )
        except Exception as exc:  # the kill cuts streams mid-body
            errors.append(repr(exc))
        if rid:
            results.append((rid, complete))
        if not complete:
            return


@pytest.mark.slow
def test_sigkill_mid_flight_reconciles(simulator: Simulator, tmp_path: Path) -> None:
    gw = Gateway(
        tmp_path / "gw",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_FLUSH_SECONDS="5",
    )
    channels = [
        channel_spec("slow", f"{simulator.url}/f/chunk_delay=0.5/v1", "slow-model", "gpt-4o-mini"),
        channel_spec("fast", f"{simulator.url}/v1", "fast-model", "gpt-4o-mini"),
    ]
    gw.apply({"prices": {"*": {"input_per_1m": "1000", "output_per_1m": "2000"}}, "channels": channels})
    gw.start()
    try:
        key = new_user_key(gw, "victim", START)
        warm = httpx.post(
            gw.api + "/chat/completions",
            json={"model": "fast-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert warm.status_code == 200
        results: list[tuple[str, bool]] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=_client_calls, args=(gw, key, m, s, results, stop))
            for m, s in [("slow-model", True)] * 6 + [("fast-model", False)] * 3 + [("fast-model", True)] * 3
        ]
        for t in threads:
            t.start()
        time.sleep(2)  # fast requests complete, slow streams (5 s) are mid-flight; flushes are 5 s apart
        gw.proc.signal(signal.SIGKILL)
        gw.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        gw.proc.kill()

    complete = {rid for rid, ok in results if ok}
    interrupted = {rid for rid, ok in results if not ok}
    assert len(complete) > 10 and interrupted, (len(complete), len(interrupted), errors)

    gw.start()  # same data folder: recovery runs before the first request
    try:
        # Every request's reservation is in the ledger: as a `reserve` row, or folded with its
        # settlement into a `charge` row (replayed operations are written in batches too).
        wait_until(
            lambda: (
                gw.sql("SELECT COUNT(*) FROM ledger WHERE kind IN ('reserve', 'charge')")[0][0]
                >= len(results)
            ),
            timeout=15,
        )
        rows = gw.sql("SELECT hold_id, kind, amount, note FROM ledger WHERE hold_id LIKE 'req_%'")
        by_hold: dict[str, Counter[str]] = {}
        charged: dict[str, int] = {}
        for r in rows:
            by_hold.setdefault(r["hold_id"], Counter())[r["kind"]] += 1
            charged[r["hold_id"]] = charged.get(r["hold_id"], 0) - r["amount"]
        # Every reservation ended exactly once; nothing ended without a reservation.
        for hold, kinds in by_hold.items():
            assert kinds["charge"] == 1 or (
                kinds["reserve"] == 1 and kinds["settle"] + kinds["refund"] == 1
            ), (hold, kinds)
        # Everything a client received in full was charged at its exact cost (9 prompt + 5 output tokens).
        for rid in complete:
            assert by_hold[rid]["settle"] + by_hold[rid]["charge"] == 1, rid
            assert charged[rid] == 9 * 500 + 5 * 1000
        # Interrupted streams were refunded on restart (or charged for what was delivered).
        refunded = [h for h in interrupted if by_hold.get(h, Counter())["refund"]]
        assert refunded, "no interrupted request was refunded"
        notes = {r["note"] for r in rows if r["kind"] == "refund"}
        assert any("restart" in n for n in notes)
        # The balance equals the ledger, and the ledger equals the grant minus what was charged.
        assert balance(gw, "victim") == ledger_sum(gw, "victim") == START - sum(charged.values())
        # The usage log rows of completed requests survived the kill too (from the journal).
        logged = {r["request_id"] for r in gw.sql("SELECT request_id FROM usage_logs")}
        assert complete <= logged
        # And the gateway serves again, from the recovered balance.
        ok = httpx.post(
            gw.api + "/chat/completions",
            json={"model": "fast-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert ok.status_code == 200
    finally:
        gw.stop()
