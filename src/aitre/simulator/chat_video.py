"""Sora by chat, as relays sell it. `sora_video2` (and the aliases naming orientation and length)
makes a video of the last user message: its text, and an `image_url` part (a data URI or a link
to this simulator's files) as the first frame. `sora_remover` takes the URL of a video in the
message and answers with that video without its watermark (one of ours: the same video with the
stamp painted out; any other URL, a Sora share link say, is never fetched: a new video stands in).

The task moves on the clock of `video_tasks` while the stream reports it, in one of the two ways
upstreams were seen doing it (`/_sim/config` `video_chat_style`):
- `quote`: markdown in `delta.content`: a JSON block of the order, `> ID: ...`, `> Queued...`,
  `> 🏃 Progress 40%` lines, then `video generated successful,[click here](<url>.mp4)`;
- `reasoning` (sora2api): progress in `delta.reasoning_content` (`**Video Generation Progress**:
  40% (processing)`), the video as an HTML `<video>` block, `finish_reason: "STOP"`.
A failure is an `{"error": ...}` event (after a `> ❌` line in the quote style), then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aitre.relay.usage import count_prompt
from aitre.simulator import catalog
from aitre.simulator.common import (
    SimState,
    bad_request,
    begin,
    error,
    json_answer,
    sim,
    sim_url,
    sse,
    stream_pieces,
    wait_for_disconnect,
)
from aitre.simulator.png import BadImage, decode_data_uri, open_image
from aitre.simulator.video import BadVideo, Clip, frame_size, remove_watermark, render
from aitre.simulator.video_params import Invalid, image_bytes, linked_file
from aitre.simulator.video_tasks import Clock

KEEPALIVE_SECONDS = 2.0
_KEEPALIVE = b": keep-alive\n\n"
_URL = re.compile(r"(?:https?://|data:video/)[^\s)\]>\"']+")


@dataclass(slots=True)
class Order:
    """What a chat request asked for, and how to make it."""

    model: str
    summary: dict[str, Any]  # shown at the start of a `quote` stream
    make: Callable[[], bytes]  # the mp4 (CPU work: run in a worker thread)
    clock: Clock
    remover: bool = False


def _last_user(messages: list[Any]) -> tuple[str, dict[str, list[str]]]:
    """The text of the last user message and the URLs of its parts by type (`image_url`,
    `video_url`)."""
    urls: dict[str, list[str]] = {"image_url": [], "video_url": []}
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content, urls
        texts = []
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in urls:
                link = part.get(kind)
                url = link.get("url") if isinstance(link, dict) else link
                if isinstance(url, str) and url:
                    urls[kind].append(url)
        return " ".join(texts), urls
    return "", urls


def _video_order(state: SimState, model: str, text: str, urls: list[str]) -> Order:
    landscape = "landscape" in model
    seconds = 15 if model.endswith("-15s") else 10
    width, height = state.videos.settings.render_size(*((1280, 720) if landscape else (720, 1280)))
    reference = image_bytes(urls[0], state.files, "messages") if urls else None
    if reference is not None:
        try:
            open_image(reference)
        except BadImage as exc:
            raise Invalid(f"Invalid image in image_url: {exc}.", "messages") from None
    if not text.strip() and reference is None:
        raise Invalid("Say what the video should show in the last user message.", "messages")
    clip = Clip(text, width, height, seconds, model, reference, watermark=True)
    summary = {"prompt": text, "orientation": "landscape" if landscape else "portrait", "duration": seconds}
    clock = Clock.for_prompt(text, state.videos.settings.step_seconds)
    return Order(model, summary, lambda: render(clip).mp4, clock)


def _remover_order(state: SimState, model: str, text: str, urls: list[str]) -> Order:
    found = urls or _URL.findall(text)
    if not found:
        raise Invalid("Put the URL of a Sora video (or its share link) in the last user message.", "messages")
    url = found[0]
    data = decode_data_uri(url) if url.startswith("data:") else linked_file(url, state.files, "messages")
    clock = Clock.for_prompt(text, state.videos.settings.step_seconds)
    summary = {"url": url if not url.startswith("data:") else "data:video/..."}
    if data is not None:
        try:
            frame_size(data)
        except BadVideo as exc:
            raise Invalid(f"The linked file is not a video we can read: {exc}.", "messages") from None
        return Order(model, summary, lambda: remove_watermark(data), clock, remover=True)
    # Not ours: a video of the link stands in for the one the real service would download.
    width, height = state.videos.settings.render_size(720, 1280)
    clip = Clip(f"Sora video {url}", width, height, 10, model)
    return Order(model, summary, lambda: render(clip).mp4, clock, remover=True)


def parse_order(state: SimState, body: dict[str, Any], model: str) -> Order:
    """Read a request (in a worker thread: it decodes images); raises Invalid."""
    text, urls = _last_user(body["messages"])
    if model in catalog.VIDEO_REMOVER_MODELS:
        return _remover_order(state, model, text, urls["video_url"] + urls["image_url"])
    return _video_order(state, model, text, urls["image_url"])


async def _watch(clock: Clock) -> AsyncIterator[tuple[str, int] | None]:
    """The clock's (status, progress) each time it changes, until it ends; None when nothing has
    changed for a while (a stuck task never ends: the stream goes on until the client leaves)."""
    last: tuple[str, int] | None = None
    tick = min(0.5, max(0.02, clock.step / 2))
    quiet = 0.0
    while True:
        now = clock.phase()
        if now != last:
            yield now
            last, quiet = now, 0.0
            if now[0] in ("completed", "failed"):
                return
        elif quiet >= KEEPALIVE_SECONDS:
            yield None
            quiet = 0.0
        await asyncio.sleep(tick)
        quiet += tick


async def _made(make: Callable[[], bytes]) -> AsyncIterator[bytes | None]:
    """None (time for a keep-alive) while the mp4 is made, then the mp4; raises what making it
    raised."""
    job = asyncio.ensure_future(asyncio.to_thread(make))
    try:
        while not job.done():
            await asyncio.wait({job}, timeout=KEEPALIVE_SECONDS)
            if not job.done():
                yield None
        yield job.result()
    finally:
        job.cancel()  # the worker thread finishes on its own; only its result is dropped


class _Answer:
    """One chat answer: its chunks, in the chosen style, and the final text."""

    def __init__(self, request: Request, body: dict[str, Any], order: Order, no_usage: bool) -> None:
        state = sim(request)
        self.request, self.body, self.order, self.state = request, body, order, state
        self.style = state.videos.settings.chat_style
        self.no_usage = no_usage
        self.task_id = f"task_{secrets.token_hex(12)}"
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]
        self.base = {"id": f"chatcmpl-sim{digest}", "created": int(time.time()), "model": order.model}
        self.written: list[str] = []  # the content sent, for the completion token count

    def link(self, mp4: bytes) -> str:
        return sim_url(self.request, "/files/" + self.state.files.save(mp4, "mp4"))

    def final_text(self, url: str) -> str:
        if self.style == "reasoning":
            return f"```html\n<video src='{url}' controls></video>\n```"
        done = "watermark removed successfully" if self.order.remover else "video generated successful"
        return f"\n\n{done},[click here]({url})"

    def usage(self) -> dict[str, Any]:
        tokenizer = self.state.tokenizer
        prompt = count_prompt(tokenizer, self.body, self.order.model)
        completion = tokenizer.count("".join(self.written), self.order.model)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def chunk(self, delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        if isinstance(delta.get("content"), str):
            self.written.append(delta["content"])
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        out: dict[str, Any] = {**self.base, "object": "chat.completion.chunk", "choices": [choice]}
        if self.style == "reasoning":
            # sora2api's shape: every delta names all three fields, every chunk carries usage.
            delta.setdefault("content", None)
            delta.setdefault("reasoning_content", None)
            delta["tool_calls"] = None
            choice["native_finish_reason"] = finish
            out["usage"] = usage or {"prompt_tokens": 0}
        else:
            choice["logprobs"] = None
            out["system_fingerprint"] = "fp_simulator"
            if usage is not None:
                out["usage"] = usage
        return sse(out)

    def progress(self, status: str, progress: int) -> bytes:
        if self.style == "reasoning":
            label = "queued" if status == "queued" else "processing"
            return self.chunk(
                {"reasoning_content": f"**Video Generation Progress**: {progress}% ({label})\n"}
            )
        line = "> Queued...\n\n" if status == "queued" else f"> 🏃 Progress {progress}%\n\n"
        return self.chunk({"content": line})

    def opening(self) -> list[bytes]:
        if self.style == "reasoning":
            begins = "**Generation Process Begins**\n\nInitializing generation request...\n"
            return [self.chunk({"role": "assistant", "reasoning_content": begins})]
        summary = orjson.dumps(self.order.summary, option=orjson.OPT_INDENT_2).decode()
        return [
            self.chunk({"role": "assistant", "content": ""}),
            self.chunk({"content": f"```json\n{summary}\n```\n\n"}),
            self.chunk({"content": f"> ID: `{self.task_id}`\n\n"}),
        ]

    def failure(self, code: str | None, message: str) -> list[bytes]:
        event = sse({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
        if self.style == "reasoning":
            return [event]
        return [self.chunk({"content": f"> ❌ Video generation failed: {message}\n\n"}), event]

    def ending(self, url: str) -> list[bytes]:
        text = self.final_text(url)
        if self.style == "reasoning":
            usage = None if self.no_usage else {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}
            return [self.chunk({"content": text}, "STOP", usage)]
        done = "> Watermark removed ✅\n\n" if self.order.remover else "> Generation complete ✅\n\n"
        pieces = [self.chunk({"content": done}), self.chunk({"content": text})]
        return [*pieces, self.chunk({}, "stop", None if self.no_usage else self.usage())]

    async def pieces(self) -> AsyncIterator[tuple[bytes, bool]]:
        """The stream, as `(bytes, counts)`: progress and content count for `truncate`/`stall`."""
        for raw in self.opening():
            yield raw, b'"content":""' not in raw
        status = "queued"
        async for seen in _watch(self.order.clock):
            if seen is None:
                yield _KEEPALIVE, False
                continue
            status = seen[0]
            if status != "failed":
                yield self.progress(*seen), True
        if status == "failed":
            for raw in self.failure(*_failure(self.order.clock)):
                yield raw, True
            return
        url = ""
        try:
            async for made in _made(self.order.make):
                if made is None:
                    yield _KEEPALIVE, False
                else:
                    url = self.link(made)
        except (BadVideo, BadImage) as exc:
            for raw in self.failure("video_generation_failed", f"The video could not be made: {exc}"):
                yield raw, True
            return
        for raw in self.ending(url):
            yield raw, True


def _failure(clock: Clock) -> tuple[str, str]:
    err = clock.error_object()
    return err["code"], err["message"]


async def video_chat(request: Request, body: dict[str, Any], model: str) -> Response:
    state = sim(request)
    try:
        order = await asyncio.to_thread(parse_order, state, body, model)
    except Invalid as exc:
        return bad_request(str(exc), exc.param)
    except BadImage as exc:
        return bad_request(f"Invalid data URI in the message: {exc}.", "messages")
    stream = body.get("stream") is True
    started = await begin(request, model, stream)
    if isinstance(started, Response):
        return started
    ev, fault = started
    answer = _Answer(request, body, order, fault.no_usage)
    if stream:
        return StreamingResponse(
            stream_pieces(request, answer.pieces(), fault, ev, tail=b"data: [DONE]\n\n"),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    # One answer at the end: wait out the clock (a stuck task: until the client gives up).
    leaves = asyncio.ensure_future(wait_for_disconnect(request))
    stuck = order.clock.fate == "stuck"
    await asyncio.wait({leaves}, timeout=None if stuck else max(0.0, order.clock.runtime - _elapsed(order)))
    if leaves.done():
        ev.end("disconnected")
        return Response(status_code=499)
    leaves.cancel()
    if order.clock.fate == "failed":
        ev.end("completed")
        code, message = _failure(order.clock)
        return error(500, message, code)
    try:
        url = answer.link(await asyncio.to_thread(order.make))
    except (BadVideo, BadImage) as exc:
        ev.end("completed")
        return error(500, f"The video could not be made: {exc}", "video_generation_failed")
    text = answer.final_text(url)
    answer.written.append(text)
    reply = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": "stop"}
    payload: dict[str, Any] = {**answer.base, "object": "chat.completion", "choices": [choice]}
    if not fault.no_usage:
        payload["usage"] = answer.usage()
    return json_answer(payload, fault, ev)


def _elapsed(order: Order) -> float:
    return time.monotonic() - order.clock.started
