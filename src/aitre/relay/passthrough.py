"""One attempt against an upstream that speaks the client's format: send the request, and pass
the answer through (buffered JSON/text, an SSE stream, or raw bytes), measuring usage on the way.

Used for every forwarded capability (`adapters.capability.FORWARDED`); protocols that need
conversion answer through their own pieces (images: `facades.images_api`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.base import Retryable
from aitre.errors import ApiError
from aitre.relay.errors import CHANNEL_DEAD, RETRYABLE_STATUS, detail, error_from_failure, error_from_status
from aitre.relay.outcome import count_usage, finish, note_attempt
from aitre.relay.respond import BodyResponse
from aitre.relay.sse import StreamTap
from aitre.relay.streaming import BlockSource, StreamOutcome, StreamResponse, UpstreamBytes, UpstreamEvents
from aitre.relay.upstream import Response, Timeouts, UpstreamFailure, UpstreamRequest, read_body
from aitre.relay.usage import Usage, completion_text, usage_from_dict

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

_ERROR_BODY_LIMIT = 1024 * 1024
_RESPONSE_LIMIT = 256 * 1024 * 1024
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def channel_timeouts(state: AppState, channel: ChannelInfo) -> Timeouts:
    """The channel's own timeouts (`config`), else the gateway's; worked out once per channel."""
    found: Timeouts | None = channel.cache.get("timeouts")
    if found is None:
        t = state.upstream.default_timeouts()
        cfg = channel.config
        found = channel.cache["timeouts"] = Timeouts(
            connect=float(cfg.get("connect_timeout", t.connect)),
            first_byte=float(cfg.get("first_byte_timeout", t.first_byte)),
            idle=float(cfg.get("idle_timeout", t.idle)),
        )
    return found


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


async def send(
    state: AppState, job: RelayJob, channel: ChannelInfo, req: UpstreamRequest, timeouts: Timeouts
) -> Response:
    """Send, and turn an error status into `Retryable` or `ApiError`. Returns a 2xx response."""
    t0 = time.perf_counter()
    try:
        resp = await state.upstream.send(req, timeouts)
    except UpstreamFailure as failure:
        note_attempt(job, channel, 0, _ms(t0), failure.message)
        raise Retryable(error_from_failure(failure)) from failure
    if resp.status < 400:
        note_attempt(job, channel, resp.status, _ms(t0))
        return resp
    try:
        body = await read_body(resp, timeouts, _ERROR_BODY_LIMIT)
    except UpstreamFailure:
        body = b""
    finally:
        resp.release()
    error = error_from_status(resp.status, body, resp.headers)
    note_attempt(job, channel, resp.status, _ms(t0), detail(error))
    if resp.status in RETRYABLE_STATUS or resp.status in (401, 402, 403) or error.code in CHANNEL_DEAD:
        raise Retryable(error)
    raise error


async def execute(state: AppState, job: RelayJob, channel: ChannelInfo, req: UpstreamRequest) -> ASGIApp:
    timeouts = channel_timeouts(state, channel)
    resp = await send(state, job, channel, req, timeouts)
    if job.binary_response and resp.status == 200:
        return await _start_stream(state, job, channel, resp, UpstreamBytes(resp, timeouts))
    if job.stream and resp.content_type == "text/event-stream":
        tap = StreamTap(strip_usage_chunk=job.wants_stream_usage_injected and not job.client_wants_usage)
        return await _start_stream(state, job, channel, resp, UpstreamEvents(resp, tap, timeouts))
    return await _buffered(state, job, channel, resp, timeouts)


async def _buffered(
    state: AppState, job: RelayJob, channel: ChannelInfo, resp: Response, timeouts: Timeouts
) -> BodyResponse:
    t0 = time.perf_counter()
    try:
        body = await read_body(resp, timeouts, _RESPONSE_LIMIT)
    except UpstreamFailure as failure:
        resp.close()
        raise Retryable(error_from_failure(failure)) from failure
    finally:
        job.upstream_ms += _ms(t0)
    resp.release()
    media_type = resp.headers.get("content-type", "application/json")
    usage = job.known_units
    if resp.content_type == "application/json":
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = "upstream answered with a body that is not valid JSON"
            raise Retryable(
                ApiError(502, message, type="upstream_error", code="upstream_bad_response")
            ) from None
        usage = await measure(state, job, data)
    finish(state, job, channel, resp.status, "", usage)
    return BodyResponse(body, resp.status, media_type, job.request_id)


async def measure(state: AppState, job: RelayJob, data: Any) -> Usage:
    """Usage of a JSON answer: the upstream's report, else counted."""
    reported = usage_from_dict(data.get("usage")) if isinstance(data, dict) else None
    if reported is None and isinstance(data, dict) and isinstance(data.get("usage"), dict):
        seconds = data["usage"].get("seconds")  # transcription usage {type: duration, seconds}
        if isinstance(seconds, int | float):
            reported = Usage(seconds=float(seconds))
    if reported is None and job.endpoint in ("chat.completions", "completions"):
        return await count_usage(state, job, completion_text(data))
    return job.known_units.merged(reported) if reported else job.known_units


async def _start_stream(
    state: AppState, job: RelayJob, channel: ChannelInfo, resp: Response, source: BlockSource
) -> StreamResponse:
    t0 = time.perf_counter()
    try:
        first = await source.next_block()
    except UpstreamFailure as failure:
        source.close(reuse=False)
        raise Retryable(error_from_failure(failure)) from failure
    except BaseException:
        source.close(reuse=False)
        raise
    finally:
        job.upstream_ms += _ms(t0)
    if not first and not source.complete():
        source.close(reuse=False)
        message = "upstream ended the stream before sending anything"
        raise Retryable(ApiError(502, message, type="upstream_error", code="upstream_stream_error"))
    ttfb_ms = job.elapsed_ms()

    async def on_close(outcome: StreamOutcome) -> None:
        if isinstance(source, UpstreamEvents):
            usage = source.tap.usage
            usage = (
                job.known_units.merged(usage)
                if usage
                else await count_usage(state, job, source.tap.delivered_text())
            )
        else:
            usage = job.known_units
        finish(state, job, channel, outcome.status, outcome.error, usage, ttfb_ms=ttfb_ms)

    if isinstance(source, UpstreamEvents):
        headers = list(_SSE_HEADERS)
    else:
        headers = [(b"content-type", resp.headers.get("content-type", "application/octet-stream").encode())]
    headers.append((b"x-request-id", job.request_id.encode()))
    return StreamResponse(source, first, headers, on_close)
