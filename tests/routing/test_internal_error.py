"""A bug met while relaying is not a client disconnect: it is logged once with its traceback and
recorded as a 500 under an error id that the client sees too, so the operator can find it."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from aitre.app import create_app
from aitre.config import Settings


def _user_key(data_dir: Path) -> str:
    for line in (data_dir / "initial-keys.env").read_text().splitlines():
        if line.startswith("export AITRE_USER_KEY="):
            return line.split("=", 1)[1]
    raise AssertionError("no user key written")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "a boat"}),
    ],
)
async def test_an_adapter_bug_is_a_500_with_an_error_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, body: dict[str, Any]
) -> None:
    # The books are written once, when the app stops: with frequent flushes, the final one failed
    # once with "database is locked" (likely a periodic flush cancelled mid-write at stop).
    app = create_app(Settings(data_dir=tmp_path, port=9, flush_seconds=3600, _env_file=None))  # type: ignore[call-arg]
    context = app.lifespan()
    app.state = state = await context.__aenter__()
    try:

        async def bug(*args: object, **kwargs: object) -> NoReturn:
            raise KeyError("choices")  # what a parser that trusted the upstream's answer would raise

        state.upstream.send = bug  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            with caplog.at_level(logging.ERROR, logger="aitre"):
                resp = await client.post(
                    path, json=body, headers={"Authorization": f"Bearer {_user_key(tmp_path)}"}
                )
    finally:
        await context.__aexit__(None, None, None)

    assert resp.status_code == 500, resp.text
    err = resp.json()["error"]
    assert (err["type"], err["code"]) == ("server_error", "internal_error")
    found = re.search(r"error id (err_[0-9a-f]+)", err["message"])
    assert found, err["message"]
    error_id = found.group(1)
    assert "KeyError" not in resp.text  # the details are for the operator
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert resp.headers["x-request-id"] in logged[0].getMessage()

    conn = sqlite3.connect(tmp_path / "aitre.db")
    try:
        status, error, quota = conn.execute(
            "SELECT status_code, error, quota FROM usage_logs WHERE request_id = ?",
            (resp.headers["x-request-id"],),
        ).fetchone()
    finally:
        conn.close()
    assert status == 500 and error_id in error and "KeyError" in error and quota == 0
