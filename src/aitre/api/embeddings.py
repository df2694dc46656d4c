"""POST /v1/embeddings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from aitre.api.common import app_state, authenticate, new_job, read_json_object, require_model
from aitre.errors import bad_request
from aitre.relay.pipeline import relay


def _valid_input(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) and v for v in value):
        return True
    if all(isinstance(v, int) for v in value):
        return True
    return all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value)


async def embeddings(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = await read_json_object(request, state.settings.max_body_bytes)
    model = require_model(body)
    if not _valid_input(body.get("input")):
        raise bad_request(
            "`input` must be a non-empty string, array of strings, array of tokens or of token arrays.",
            param="input",
        )
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_request("`encoding_format` must be 'float' or 'base64'.", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or dims < 1):
        raise bad_request("`dimensions` must be a positive integer.", param="dimensions")
    return await relay(state, new_job(request, caller, "embeddings", "/embeddings", body, model))
