"""Image by chat: a chat request to an image model (gpt-4o-image, gemini-2.5-flash-image-preview,
a Flux model, ...) answered as a chat completion whose content is markdown image links to our
media store.

The images come from any channel that makes images of the model (`images.generate`, or
`images.edit` when the user sent reference images), whatever its protocol: OpenAI's images API,
an image model that itself answers chat (it gets the conversation), BFL's task API. Either
way the images are copied into our media store, so the links outlive the upstream's.
Reference images given as URLs are fetched by us first, with the SSRF guard.

A chat model is answered this way when it is listed in `AITRE_IMAGE_CHAT_MODELS`, or when the
channels that serve it only make images (a Flux model, say).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from aitre.adapters.base import serves
from aitre.adapters.capability import CHAT, IMAGES_EDIT, IMAGES_GENERATE
from aitre.adapters.images import ImageMaker, ImageRequest, all_or_nothing, image_bytes
from aitre.errors import ApiError, bad_request
from aitre.facades.chat_shapes import chat_completion, chat_stream_chunks
from aitre.media.fetch import FetchRefused
from aitre.media.kinds import is_image, sniff
from aitre.relay.cancel import unless_disconnected
from aitre.relay.job import RelayJob, UploadedFile
from aitre.relay.live import Emit, LiveStream
from aitre.relay.outcome import count_usage, finish, waiting
from aitre.relay.pipeline import Filters, admit, ensure_routable, filters, piece, with_failover
from aitre.relay.usage import Usage

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

# Image options of OpenAI's images API a chat request may carry along.
_IMAGE_OPTIONS = ("size", "quality", "background", "output_format")


@dataclass(slots=True)
class ImageAnswer:
    content: str
    usage: Usage


def is_image_chat(state: AppState, model: str) -> bool:
    if model in state.settings.image_chat_models:
        return True
    router = state.catalog.router
    found = router.memo.get(model)
    if found is None:
        found = _makes_images_only(state, model)
        if router.named(model):  # not remembered otherwise: clients can make up endless names
            router.memo[model] = found
    return bool(found)


def _makes_images_only(state: AppState, model: str) -> bool:
    """The channels of `model` make images of it and none of them chats with it."""
    channels = state.catalog.router.candidates(model)
    adapters = [(state.adapter_for(ch), ch, ch.upstream_model(model)) for ch in channels]
    if any(serves(a, CHAT, ch, m) for a, ch, m in adapters):
        return False
    return any(serves(a, IMAGES_GENERATE, ch, m) for a, ch, m in adapters)


def _last_user(messages: list[Any]) -> dict[str, Any]:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return m
    raise bad_request("An image model needs a user message with a prompt.", param="messages")


def prompt_and_refs(messages: list[Any]) -> tuple[str, list[str]]:
    content = _last_user(messages).get("content")
    if isinstance(content, str):
        return content.strip(), []
    texts, refs = [], []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if isinstance(url, str) and url:
                refs.append(url)
    return " ".join(t.strip() for t in texts if t.strip()), refs


async def _load_refs(state: AppState, refs: list[str]) -> list[bytes]:
    images = []
    for url in refs:
        fetched = await state.fetcher.fetch(url, param="messages")
        if not is_image(fetched.ext):
            raise FetchRefused(
                f"the reference at {url[:80]} is not a PNG, JPEG, WEBP or GIF image", "messages"
            )
        images.append(fetched.data)
    return images


def _image_request(job: RelayJob, prompt: str, refs: list[str], ref_data: list[bytes]) -> ImageRequest:
    """The chat request in images-API terms, and as a chat with the references inlined (the
    upstream cannot fetch what we fetched: it may be a private address we were allowed)."""
    fields: dict[str, Any] = {"prompt": prompt, "n": 1}
    fields.update({k: job.body[k] for k in _IMAGE_OPTIONS if k in job.body})
    files = []
    for i, data in enumerate(ref_data):
        ext = sniff(data)
        files.append(UploadedFile(f"reference{i}.{ext}", f"image/{'jpeg' if ext == 'jpg' else ext}", data))
    inline = {
        url: f"data:{f.content_type};base64,{base64.b64encode(f.data).decode()}"
        for url, f in zip(refs, files, strict=True)
    }
    messages: list[Any] = orjson.loads(orjson.dumps(job.body["messages"]))
    for m in messages:
        parts = m.get("content") if isinstance(m, dict) else None
        for part in parts if isinstance(parts, list) else ():
            iu = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(iu, dict) and iu.get("url") in inline:
                iu["url"] = inline[iu["url"]]
    chat = {k: v for k, v in job.body.items() if k not in ("stream", "stream_options")}
    chat["messages"] = messages
    return ImageRequest(fields, files, chat=chat)


async def _generate(state: AppState, job: RelayJob, request: ImageRequest, route: Filters) -> ImageAnswer:
    async def attempt(channel: ChannelInfo) -> ImageAnswer:
        make: ImageMaker | None = piece(state, channel, route[2])
        if make is None:  # the router only picks channels that serve the capability
            raise RuntimeError(f"channel {channel.id} was picked for {route[2][0]} but makes no images")
        images = await waiting(job, make(state, job, channel, request))
        blobs = await all_or_nothing([image_bytes(state, channel, i) for i in images.items])
        links = [f"![image]({(await state.media.save(b)).url})" for b in blobs]
        content = "\n\n".join([images.text, *links] if images.text else links)
        usage = images.usage
        if not usage.prompt_tokens:  # counted off the loop when the prompt is long
            usage.prompt_tokens = (await count_usage(state, job, "")).prompt_tokens
        usage.images = len(blobs)
        finish(state, job, channel, 200, "", usage)
        return ImageAnswer(content, usage)

    return await with_failover(state, job, attempt, route=route)


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def image_chat(state: AppState, job: RelayJob) -> Response | LiveStream:
    prompt, refs = prompt_and_refs(job.body["messages"])
    if not prompt:
        raise bad_request("The last user message needs text describing the image.", param="messages")
    route = filters(state, job, IMAGES_EDIT if refs else IMAGES_GENERATE)
    ensure_routable(state, job, route)
    request = _image_request(job, prompt, refs, await _load_refs(state, refs))
    await admit(state, job, image_chat=True)
    created = int(time.time())
    completion_id = "chatcmpl-" + job.request_id.removeprefix("req_")
    if not job.stream:
        answer = await unless_disconnected(job.receive, _generate(state, job, request, route))
        body = chat_completion(completion_id, created, job.model, answer.content, _usage_json(answer.usage))
        return Response(
            orjson.dumps(body), media_type="application/json", headers={"x-request-id": job.request_id}
        )

    ended = False

    async def work(emit: Emit) -> None:
        nonlocal ended
        chunks = chat_stream_chunks(completion_id, created, job.model)
        await emit(chunks.role())
        try:
            answer = await _generate(state, job, request, route)
        except ApiError as error:
            ended = True
            await emit(error.sse_event() + b"data: [DONE]\n\n")
            return
        ended = True
        await emit(chunks.content(answer.content) + chunks.finish("stop"))
        if job.client_wants_usage:
            await emit(chunks.usage(_usage_json(answer.usage)))
        await emit(b"data: [DONE]\n\n")

    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-request-id", job.request_id.encode()),
    ]

    async def on_gone() -> None:
        if not ended:
            finish(state, job, None, 499, "client disconnected")

    return LiveStream(work, headers, on_gone)
