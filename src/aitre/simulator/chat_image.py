"""Image models called through chat completions (Gemini "nano banana", gpt-4o-image).

The answer is markdown with the image, plus OpenRouter's `message.images`. Gemini models inline
the image as a data URI; the gpt-4o-image family links to a file the simulator serves, as the
relays that sell those models do.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aitre.relay.usage import count_prompt
from aitre.simulator.common import bad_request, begin, json_answer, sim, sim_url, sse, sse_response
from aitre.simulator.png import BadImage, Canvas, b64, decode_data_uri, open_image, render

SIDE = 1024
# Completion tokens billed per image: Gemini's flat 1290; GPT image "high" at 1024x1024.
_TOKENS_PER_IMAGE = {"gemini": 1290, "gpt": 4160}


def _last_user_parts(messages: list[Any]) -> tuple[str, str | None]:
    """The text of the last user message and its first data-URI image (http URLs are ignored:
    the simulator never fetches)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content, None
        texts: list[str] = []
        image: str | None = None
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            url = (part.get("image_url") or {}).get("url") if part.get("type") == "image_url" else None
            if image is None and isinstance(url, str) and url.startswith("data:"):
                image = url
        return " ".join(texts), image
    return "", None


def _usage(request: Request, body: dict[str, Any], model: str) -> dict[str, Any]:
    prompt = count_prompt(sim(request).tokenizer, body, model)
    completion = _TOKENS_PER_IMAGE["gemini" if model.startswith("gemini") else "gpt"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _render(prompt: str, model: str, reference: bytes | None) -> bytes:
    source = open_image(reference) if reference is not None else None
    return render(Canvas(prompt or "image", SIDE, SIDE, seed=model), source)


async def image_chat(request: Request, body: dict[str, Any], model: str) -> Response:
    prompt, image_uri = _last_user_parts(body["messages"])
    reference = None
    if image_uri is not None:
        try:
            reference = decode_data_uri(image_uri)
        except BadImage as exc:
            return bad_request(f"Invalid image in image_url: {exc}.", "messages")
    stream = body.get("stream") is True
    started = await begin(request, model, stream)
    if isinstance(started, Response):
        return started
    ev, fault = started
    try:
        png = await asyncio.to_thread(_render, prompt, model, reference)
    except BadImage as exc:
        ev.end("completed")
        return bad_request(f"Invalid image in image_url: {exc}.", "messages")
    if model.startswith("gemini"):
        url = "data:image/png;base64," + b64(png)
    else:
        url = sim_url(request, "/files/" + sim(request).files.save(png, "png"))
    content = f"Here is your image.\n\n![image]({url})"
    images = [{"type": "image_url", "image_url": {"url": url}, "index": 0}]
    usage = None if fault.no_usage else await asyncio.to_thread(_usage, request, body, model)
    base = {
        "id": "chatcmpl-sim" + hashlib.sha256(png).hexdigest()[:20],
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
    }
    if not stream:
        return json_answer(_message(base, content, images, usage), fault, ev)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage is not None
    chunks = _chunks(base, content, images, usage if include_usage else None)
    pieces = [(sse(c), bool(c["choices"] and c["choices"][0]["delta"].get("content"))) for c in chunks]
    return sse_response(request, pieces, fault, ev)


def _message(
    base: dict[str, Any], content: str, images: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, "refusal": None, "images": images}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    answer = {**base, "object": "chat.completion", "choices": [choice]}
    if usage is not None:
        answer["usage"] = usage
    return answer


def _chunks(
    base: dict[str, Any], content: str, images: list[dict[str, Any]], usage: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Role, the whole answer in one content chunk, finish; then usage when asked for."""
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": ""},
        {"content": content, "images": images},
        {},
    ]
    chunks: list[dict[str, Any]] = []
    for i, delta in enumerate(deltas):
        finish = "stop" if i == len(deltas) - 1 else None
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        if usage is not None:
            chunk["usage"] = None
        chunks.append(chunk)
    if usage is not None:
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    return chunks
