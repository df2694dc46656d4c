"""`POST /v1/chat/completions`: deterministic text, or an image for the image-by-chat models."""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator import catalog
from aitre.simulator.chat import chat_chunks, chat_response, make_choices, usage_for
from aitre.simulator.chat_image import image_chat
from aitre.simulator.chat_video import video_chat
from aitre.simulator.common import (
    CutBody,
    bad_request,
    begin,
    open_json,
    sim,
    sse,
    sse_response,
)


def _is_content(raw: bytes) -> bool:
    return b'"content":"' in raw and b'"content":""' not in raw


async def chat_completions(request: Request) -> Response:
    models = (*catalog.CHAT_MODELS, *catalog.CHAT_IMAGE_MODELS, *catalog.CHAT_VIDEO_MODELS)
    opened = await open_json(request, models)
    if isinstance(opened, Response):
        return opened
    body, model = opened
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad_request("`messages` must be a non-empty array.", "messages")
    if model in catalog.CHAT_IMAGE_MODELS:
        return await image_chat(request, body, model)
    if model in catalog.CHAT_VIDEO_MODELS:
        return await video_chat(request, body, model)
    stream = body.get("stream") is True
    started = await begin(request, model, stream)
    if isinstance(started, Response):
        return started
    ev, fault = started
    choices = make_choices(body, model)
    tokenizer = sim(request).tokenizer
    usage = None if fault.no_usage else await asyncio.to_thread(usage_for, tokenizer, body, model, choices)
    if not stream:
        payload = orjson.dumps(chat_response(body, model, usage, choices))
        if fault.truncate >= 0:
            ev.end("fault")
            return CutBody(payload)
        ev.end("completed")
        return Response(payload, media_type="application/json")
    pieces = [(raw, _is_content(raw)) for raw in map(sse, chat_chunks(body, model, usage, choices))]
    return sse_response(request, pieces, fault, ev)
