"""POST /v1/completions (legacy text completions)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from aitre.api.common import app_state, authenticate, new_job, read_json_object, require_model
from aitre.errors import bad_request
from aitre.relay.pipeline import relay


async def completions(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = await read_json_object(request, state.settings.max_body_bytes)
    model = require_model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
        raise bad_request("`prompt` must be a string or a non-empty array.", param="prompt")
    job = new_job(
        request, caller, "completions", "/completions", body, model, stream=body.get("stream") is True
    )
    return await relay(state, job)
