"""/healthz (the process answers) and /readyz (the database answers, a channel is usable)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from aitre.api.common import app_state
from aitre.jsonresp import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = app_state(request)
    problems: list[str] = []
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if not state.catalog.router.models():
        problems.append("no enabled channel")
    if problems:
        return json_response({"status": "unavailable", "problems": problems}, status=503)
    return json_response({"status": "ready"})
