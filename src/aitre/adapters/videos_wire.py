"""OpenAI's video API (`/v1/videos`) over HTTP: the calls aitre makes to a video upstream (or the
simulator), each bounded in time and size.

The channel's key goes as `Authorization: Bearer`. Answers are OpenAI's `Video` object, a cursor
page of them, or the raw bytes of a file. A failure that says nothing about the request
(connection, 5xx, 429, 401/403: the channel's own key) raises `Retryable`; a call that makes
work upstream (a create, a remix) raises the `UpstreamFailure` it is once it may have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import orjson

from aitre.adapters.base import Retryable
from aitre.media.kinds import sniff
from aitre.relay.errors import RETRYABLE_STATUS, error_from_failure, error_from_status
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure, UpstreamRequest, read_body
from aitre.tasks.protocol import TaskRefused

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

ANSWER_LIMIT = 4 * 1024 * 1024  # a page of video objects with long prompts; never a file
_WRITE_AT = 1024 * 1024  # bytes gathered before each write to disk (in a worker thread)
NOT_OFFERED = frozenset({400, 404, 405, 415, 501})  # a variant this upstream does not make


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body.strip() else None
        except orjson.JSONDecodeError:
            return None

    def poll_after_s(self) -> float | None:
        """The upstream's hint (`openai-poll-after-ms`), as the SDK's `poll()` reads it."""
        value = self.headers.get("openai-poll-after-ms", "")
        return int(value) / 1000 if value.isdigit() else None


def headers(channel: ChannelInfo, extra: dict[str, str] | None = None) -> dict[str, str]:
    found = {"Accept": "application/json", **(extra or {})}
    if channel.secret:
        found["Authorization"] = f"Bearer {channel.secret}"
    return found


def url(channel: ChannelInfo, path: str) -> str:
    return channel.api_base() + path


def video_path(upstream_id: str, suffix: str = "") -> str:
    return f"/videos/{quote(upstream_id, safe='')}{suffix}"


async def call(
    state: AppState,
    channel: ChannelInfo,
    method: str,
    path: str,
    body: bytes | None = None,
    extra_headers: dict[str, str] | None = None,
    makes_work: bool = False,
) -> Answer:
    """One call; the answer whatever its status. Raises Retryable when nothing reached the
    upstream (or, for calls that make no work, when the call broke)."""
    timeouts = channel_timeouts(state, channel)
    req = UpstreamRequest(method, url(channel, path), headers(channel, extra_headers), body)
    try:
        resp = await state.upstream.send(req, timeouts)
        try:
            raw = await read_body(resp, timeouts, ANSWER_LIMIT)
        finally:
            resp.release()
    except UpstreamFailure as failure:
        if makes_work and failure.kind != "connect":
            raise
        raise Retryable(error_from_failure(failure)) from failure
    return Answer(resp.status, dict(resp.headers), raw)


def channel_fault(answer: Answer) -> bool:
    """The channel, not the request, is at fault: its key, its limits, its health."""
    return answer.status in (401, 402, 403) or answer.status in RETRYABLE_STATUS or answer.status >= 500


def retryable(answer: Answer) -> Retryable:
    return Retryable(error_from_status(answer.status, answer.body, answer.headers))


async def get_video(state: AppState, channel: ChannelInfo, upstream_id: str) -> Answer:
    return await call(state, channel, "GET", video_path(upstream_id))


async def list_page(state: AppState, channel: ChannelInfo, after: str | None, limit: int = 100) -> Answer:
    query = {"limit": str(limit), "order": "desc", **({"after": after} if after else {})}
    return await call(state, channel, "GET", "/videos?" + urlencode(query))


async def delete_video(state: AppState, channel: ChannelInfo, upstream_id: str) -> Answer:
    return await call(state, channel, "DELETE", video_path(upstream_id))


async def download(
    state: AppState, channel: ChannelInfo, upstream_id: str, variant: str, folder: Path, limit: int
) -> tuple[Path, str] | None:
    """One variant of a finished video, streamed into a new file in `folder` (never whole in
    memory): its path and sniffed extension, or None when the upstream does not make that
    variant. Raises UpstreamFailure (the caller tries again later) or Retryable."""
    timeouts = channel_timeouts(state, channel)
    path = video_path(upstream_id, "/content?" + urlencode({"variant": variant}))
    req = UpstreamRequest("GET", url(channel, path), headers(channel, {"Accept": "application/binary"}))
    try:
        resp = await state.upstream.send(req, timeouts)
    except UpstreamFailure as failure:
        raise Retryable(error_from_failure(failure)) from failure
    target = folder / f"{secrets.token_hex(12)}.part"
    try:
        if resp.status in NOT_OFFERED and variant != "video":
            return None
        if resp.status != 200:
            raw = await read_body(resp, timeouts, ANSWER_LIMIT)
            raise retryable(Answer(resp.status, dict(resp.headers), raw))
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise too_large(variant, limit)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        ext = await _stream_to(resp, target, limit, timeouts.first_byte, variant)
        return target, ext
    except BaseException:
        await asyncio.to_thread(_remove, target)
        raise
    finally:
        resp.release()


async def _stream_to(resp: Any, target: Path, limit: int, wait_s: float, variant: str) -> str:
    fh = await asyncio.to_thread(open, target, "wb")
    try:
        size, head, pending = 0, b"", bytearray()
        while chunk := await resp.readany(wait_s):
            size += len(chunk)
            if size > limit:
                raise too_large(variant, limit)
            if len(head) < 16:
                head += chunk[: 16 - len(head)]
            pending += chunk
            if len(pending) >= _WRITE_AT:
                await asyncio.to_thread(fh.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(fh.write, bytes(pending))
    finally:
        await asyncio.to_thread(fh.close)
    ext = sniff(head)
    wanted = ("mp4", "webm") if variant == "video" else ("webp", "png", "jpg")
    if ext not in wanted:
        raise UpstreamFailure("protocol", f"the upstream's {variant} is not a {' or '.join(wanted)} file")
    return ext


def too_large(variant: str, limit: int) -> TaskRefused:
    message = f"The upstream's {variant} is larger than the {limit} bytes kept here."
    return TaskRefused(message, "video_too_large")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
