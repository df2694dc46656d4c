"""POST /v1/chat/completions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from aitre.api.common import app_state, authenticate, new_job, read_json_object, require_model
from aitre.chattask.front import chat_task
from aitre.chattask.models import is_chat_task
from aitre.errors import bad_request
from aitre.facades.image_chat import image_chat, is_image_chat
from aitre.relay.pipeline import relay


async def chat_completions(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = await read_json_object(request, state.settings.max_body_bytes)
    model = require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty array.", param="messages")
    job = new_job(
        request,
        caller,
        "chat.completions",
        "/chat/completions",
        body,
        model,
        stream=body.get("stream") is True,
    )
    if is_chat_task(state.settings, model):
        return await chat_task(state, job)
    if is_image_chat(state, model):
        return await image_chat(state, job)
    return await relay(state, job)
