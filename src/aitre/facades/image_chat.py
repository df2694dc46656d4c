"""Image by chat: a chat request to an image model (gpt-4o-image, gemini-2.5-flash-image-preview,
…) answered as a chat completion whose content is markdown image links to our media store.

Two ways to make the image, chosen per channel (`config.image_chat_via`):
- `images`: the OpenAI images API (generations; edits when the user sent reference images);
- `chat`: an upstream image model that itself answers chat requests (images as data URIs or
  links in the content, or OpenRouter-style `message.images`).
Either way the images are copied into our media store, so the links outlive the upstream's.
Reference images given as URLs are fetched by us first, with the SSRF guard.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from aitre.adapters.base import Retryable, json_object
from aitre.adapters.openai_compat import OpenAICompatAdapter
from aitre.errors import ApiError, bad_request
from aitre.facades.chat_shapes import chat_completion, chat_stream_chunks
from aitre.media.fetch import FetchRefused, decode_data_uri
from aitre.media.kinds import is_image, sniff
from aitre.media.rehost import fetch_upstream_media
from aitre.relay import passthrough
from aitre.relay.cancel import unless_disconnected
from aitre.relay.job import RelayJob, UploadedFile
from aitre.relay.live import Emit, LiveStream
from aitre.relay.outcome import finish
from aitre.relay.pipeline import admit, ensure_routable, with_failover
from aitre.relay.upstream import read_body
from aitre.relay.usage import Usage, count_prompt, usage_from_dict

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

_IMAGE_LIMIT = 64 * 1024 * 1024
_MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(((?:data:image/[^)\s]+)|(?:https?://[^)\s]+))\)")
_openai = OpenAICompatAdapter()


@dataclass(slots=True)
class ImageAnswer:
    content: str
    usage: Usage


def is_image_chat(state: AppState, model: str) -> bool:
    return model in state.settings.image_chat_models


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


def _mode(channel: ChannelInfo, job: RelayJob) -> str:
    via = channel.config.get("image_chat_via")
    if via in ("images", "chat"):
        return str(via)
    return "chat" if job.upstream_model(channel).startswith("gemini") else "images"


async def _via_images(
    state: AppState, job: RelayJob, channel: ChannelInfo, prompt: str, refs: list[bytes]
) -> tuple[list[bytes], Usage]:
    if refs:
        form: list[tuple[str, str | UploadedFile]] = [("model", job.model), ("prompt", prompt), ("n", "1")]
        name = "image" if len(refs) == 1 else "image[]"
        for i, ref in enumerate(refs):
            ext = sniff(ref)
            form.append(
                (name, UploadedFile(f"reference{i}.{ext}", f"image/{'jpeg' if ext == 'jpg' else ext}", ref))
            )
        sub = dataclasses.replace(
            job, endpoint="images.edits", path="/images/edits", form=form, body={"model": job.model}
        )
    else:
        body: dict[str, Any] = {"model": job.model, "prompt": prompt, "n": 1}
        for key in ("size", "quality", "background", "output_format"):
            if key in job.body:
                body[key] = job.body[key]
        sub = dataclasses.replace(
            job, endpoint="images.generations", path="/images/generations", body=body, form=None
        )
    data = await _call_json(state, sub, channel)
    blobs = []
    for item in data.get("data") or []:
        if isinstance(item, dict) and item.get("b64_json"):
            blobs.append(base64.b64decode(item["b64_json"]))
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            blobs.append(await fetch_upstream_media(state, channel, item["url"]))
    usage = usage_from_dict(data.get("usage")) or Usage()
    return blobs, usage


async def _via_chat(
    state: AppState, job: RelayJob, channel: ChannelInfo, refs: list[str], ref_data: list[bytes]
) -> tuple[str, list[bytes], Usage]:
    inline = {
        url: f"data:image/{sniff(d)};base64,{base64.b64encode(d).decode()}"
        for url, d in zip(refs, ref_data, strict=True)
    }
    messages: list[Any] = orjson.loads(orjson.dumps(job.body["messages"]))
    for m in messages:
        parts = m.get("content") if isinstance(m, dict) else None
        for part in parts if isinstance(parts, list) else ():
            iu = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(iu, dict) and iu.get("url") in inline:
                iu["url"] = inline[iu["url"]]
    sub = dataclasses.replace(job, body={**job.body, "messages": messages, "stream": False}, stream=False)
    sub.body.pop("stream_options", None)
    data = await _call_json(state, sub, channel)
    message = ((data.get("choices") or [{}])[0] or {}).get("message") or {}
    text: str = message["content"] if isinstance(message.get("content"), str) else ""
    found = [m.group(2) for m in _MARKDOWN_IMAGE.finditer(text)]
    for img in message.get("images") or ():
        url = (img.get("image_url") or {}).get("url") if isinstance(img, dict) else None
        if isinstance(url, str) and url not in found:
            found.append(url)
    blobs = [
        decode_data_uri(u, _IMAGE_LIMIT)
        if u.startswith("data:")
        else await fetch_upstream_media(state, channel, u)
        for u in found
    ]
    caption = _MARKDOWN_IMAGE.sub("", text).strip()
    return caption, blobs, usage_from_dict(data.get("usage")) or Usage()


async def _call_json(state: AppState, sub: RelayJob, channel: ChannelInfo) -> dict[str, Any]:
    timeouts = passthrough.channel_timeouts(state, channel)
    resp = await passthrough.send(state, sub, channel, _openai.build(channel, sub), timeouts)
    try:
        raw = await read_body(resp, timeouts, _IMAGE_LIMIT * 2)
    finally:
        resp.release()
    return json_object(raw, "the image upstream")


async def _generate(
    state: AppState, job: RelayJob, prompt: str, refs: list[str], ref_data: list[bytes]
) -> ImageAnswer:
    async def attempt(channel: ChannelInfo) -> ImageAnswer:
        caption = ""
        if _mode(channel, job) == "chat":
            caption, blobs, usage = await _via_chat(state, job, channel, refs, ref_data)
        else:
            blobs, usage = await _via_images(state, job, channel, prompt, ref_data)
        if not blobs:
            raise Retryable(ApiError(502, "the image upstream returned no image", type="upstream_error"))
        links = [f"![image]({(await state.media.save(b)).url})" for b in blobs]
        content = "\n\n".join([caption, *links] if caption else links)
        if not usage.prompt_tokens:
            usage.prompt_tokens = count_prompt(state.tokenizer, job.body, job.model)
        usage.images = len(blobs)
        finish(state, job, channel, 200, "", usage)
        return ImageAnswer(content, usage)

    return await with_failover(state, job, attempt)


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
    ensure_routable(state, job)
    ref_data = await _load_refs(state, refs)
    await admit(state, job, image_chat=True)
    created = int(time.time())
    completion_id = "chatcmpl-" + job.request_id.removeprefix("req_")
    if not job.stream:
        answer = await unless_disconnected(job.receive, _generate(state, job, prompt, refs, ref_data))
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
            answer = await _generate(state, job, prompt, refs, ref_data)
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
