"""The books are written to the database every AITRE_FLUSH_SECONDS, but the API's log, summary,
CSV and balance queries see a request the moment it has been answered."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.processes import Gateway


def test_logs_and_balances_are_current_whatever_the_flush_interval(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "gw", AITRE_FLUSH_SECONDS="3600").start()
    try:
        answer = gw.chat(gw.user_key)
        assert answer.status_code == 200, answer.text
        rid = answer.headers["x-request-id"]
        admin = {"Authorization": f"Bearer {gw.admin_key}"}
        user = {"Authorization": f"Bearer {gw.user_key}"}
        with httpx.Client(base_url=gw.url, timeout=30) as http:
            logs = http.get("/api/admin/logs", headers=admin).json()["data"]
            assert [row["request_id"] for row in logs] == [rid]
            charged = logs[0]["quota"]
            assert charged > 0
            assert [row["request_id"] for row in http.get("/api/user/logs", headers=user).json()["data"]] == [
                rid
            ]
            assert rid in http.get("/api/admin/logs.csv", headers=admin).text
            assert http.get("/api/admin/usage/summary", headers=admin).json()["total"]["requests"] == 1
            assert http.get("/api/user/usage/summary", headers=user).json()["total"]["requests"] == 1
        # Nothing reached the database behind the API's back: it wrote what it read.
        assert gw.sql("SELECT request_id FROM usage_logs")[0]["request_id"] == rid
    finally:
        gw.stop()
