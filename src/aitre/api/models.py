"""GET /v1/models and /v1/models/{model}: what the caller's key may use, in OpenAI's shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aitre.accounts.policy import model_allowed
from aitre.api.common import app_state, authenticate
from aitre.errors import model_not_found
from aitre.jsonresp import json_response

# A fixed timestamp: model entries are stable across restarts, like OpenAI's.
_CREATED = 1_700_000_000


def _entry(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": "aitre"}


async def list_models(request: Request) -> Response:
    state = app_state(request)
    caller = await authenticate(request, state)
    data = [_entry(m) for m in state.catalog.router.models() if model_allowed(caller, m)]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    state = app_state(request)
    caller = await authenticate(request, state)
    model = request.path_params["model"]
    if model not in state.catalog.router.models() or not model_allowed(caller, model):
        raise model_not_found(model)
    return json_response(_entry(model))
