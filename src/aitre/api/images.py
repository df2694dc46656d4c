"""POST /v1/images/generations and /v1/images/edits, on any channel that makes images of the model."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from aitre.adapters.images import from_form, from_json
from aitre.api.common import (
    app_state,
    authenticate,
    form_files,
    form_model,
    form_value,
    new_job,
    read_form,
    read_json_object,
    require_model,
    require_str,
)
from aitre.errors import bad_request
from aitre.facades.images_api import images_api


def _check_n(n: object) -> None:
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10):
        raise bad_request("`n` must be an integer between 1 and 10.", param="n")


async def generations(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = await read_json_object(request, state.settings.max_body_bytes)
    model = require_model(body)
    require_str(body, "prompt", max_len=32000)
    _check_n(body.get("n"))
    job = new_job(request, caller, "images.generations", "/images/generations", body, model)
    return await images_api(state, job, from_json(body))


async def edits(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    fields = await read_form(request, state.settings.max_body_bytes)
    model = form_model(fields)
    if not (form_value(fields, "prompt") or "").strip():
        raise bad_request("`prompt` is required.", param="prompt")
    if not form_files(fields, "image", "image[]"):
        raise bad_request("An `image` file is required.", param="image")
    n = form_value(fields, "n")
    _check_n(int(n) if n and n.isdigit() else n)
    job = new_job(request, caller, "images.edits", "/images/edits", {"model": model}, model, form=fields)
    return await images_api(state, job, from_form(fields))
