"""The relay for OpenAI-format JSON endpoints: choose a channel, call it, fail over while
nothing has reached the client, pass the answer through, measure usage, log.

Billing hooks in here (reserve before the first attempt, settle or refund at the end).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response

from aitre.channels.model import ChannelInfo
from aitre.errors import ApiError, model_not_found
from aitre.relay.errors import RETRYABLE_STATUS, error_from_failure, error_from_status, no_channel
from aitre.relay.job import Attempt, RelayJob
from aitre.relay.sse import StreamTap
from aitre.relay.streaming import StreamOutcome, StreamResponse, UpstreamEvents
from aitre.relay.upstream import Timeouts, UpstreamFailure, read_body
from aitre.relay.usage import Usage, completion_text, count_prompt, usage_from_dict
from aitre.state import AppState

_ERROR_BODY_LIMIT = 1024 * 1024
_RESPONSE_LIMIT = 256 * 1024 * 1024
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _Retry(Exception):
    """This attempt failed in a way another channel may not."""

    def __init__(self, error: ApiError) -> None:
        self.error = error


async def relay(state: AppState, job: RelayJob) -> Response | StreamResponse:
    router = state.catalog.router
    tried: set[int] = set()
    last_error: ApiError | None = None
    max_attempts = 1 + max(state.settings.retries, 0)
    while len(tried) < max_attempts:
        channel = router.pick(job.model, tried)
        if channel is None:
            break
        tried.add(channel.id)
        try:
            return await _attempt(state, job, channel)
        except _Retry as retry:
            last_error = retry.error
        except ApiError as error:
            _log(state, job, channel, error.status, error.message)
            raise
    if last_error is None:
        raise model_not_found(job.model) if not router.known(job.model) else no_channel(job.model)
    _log(state, job, None, last_error.status, last_error.message)
    raise last_error


def _timeouts(state: AppState, channel: ChannelInfo) -> Timeouts:
    t = state.upstream.default_timeouts()
    cfg = channel.config
    return Timeouts(
        connect=float(cfg.get("connect_timeout", t.connect)),
        first_byte=float(cfg.get("first_byte_timeout", t.first_byte)),
        idle=float(cfg.get("idle_timeout", t.idle)),
    )


async def _attempt(state: AppState, job: RelayJob, channel: ChannelInfo) -> Response | StreamResponse:
    adapter = state.adapters.get(channel.type)
    if adapter is None:
        raise _Retry(ApiError(502, f"channel type {channel.type!r} is not supported", type="server_error"))
    timeouts = _timeouts(state, channel)
    req = adapter.build(channel, job)
    t0 = time.perf_counter()
    try:
        resp = await state.upstream.send(req, timeouts)
    except UpstreamFailure as failure:
        _note(job, channel, 0, t0, failure.message)
        raise _Retry(error_from_failure(failure)) from failure

    if resp.status >= 400:
        try:
            body = await read_body(resp, timeouts, _ERROR_BODY_LIMIT)
        except UpstreamFailure:
            body = b""
        finally:
            resp.release()
        error = error_from_status(resp.status, body, dict(resp.headers))
        _note(job, channel, resp.status, t0, error.message)
        if resp.status in RETRYABLE_STATUS or resp.status in (401, 402, 403):
            raise _Retry(error)
        raise error

    if job.stream and resp.content_type == "text/event-stream":
        return await _start_stream(state, job, channel, resp, timeouts, t0)

    try:
        body = await read_body(resp, timeouts, _RESPONSE_LIMIT)
    except UpstreamFailure as failure:
        resp.close()
        _note(job, channel, 0, t0, failure.message)
        raise _Retry(error_from_failure(failure)) from failure
    resp.release()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        message = "upstream answered with a body that is not valid JSON"
        _note(job, channel, resp.status, t0, message)
        raise _Retry(ApiError(502, message, type="upstream_error", code="upstream_bad_response")) from None
    _note(job, channel, resp.status, t0)
    usage = (usage_from_dict(data.get("usage")) if isinstance(data, dict) else None) or await _count(
        state, job, completion_text(data)
    )
    _log(state, job, channel, resp.status, "", usage)
    headers = {"x-request-id": job.request_id}
    return Response(
        body, status_code=resp.status, media_type=resp.headers.get("content-type"), headers=headers
    )


async def _start_stream(
    state: AppState,
    job: RelayJob,
    channel: ChannelInfo,
    resp: aiohttp.ClientResponse,
    timeouts: Timeouts,
    t0: float,
) -> StreamResponse:
    tap = StreamTap(strip_usage_chunk=job.wants_stream_usage_injected and not job.client_wants_usage)
    events = UpstreamEvents(resp, tap, timeouts)
    try:
        first = await events.next_block()
    except UpstreamFailure as failure:
        events.close(reuse=False)
        _note(job, channel, 0, t0, failure.message)
        raise _Retry(error_from_failure(failure)) from failure
    except asyncio.CancelledError:
        events.close(reuse=False)
        raise
    if not first and not tap.done:
        events.close(reuse=False)
        message = "upstream ended the stream before sending any event"
        _note(job, channel, 0, t0, message)
        raise _Retry(ApiError(502, message, type="upstream_error", code="upstream_stream_error"))
    ttfb_ms = job.elapsed_ms()
    _note(job, channel, resp.status, t0)

    async def on_close(outcome: StreamOutcome) -> None:
        usage = tap.usage or await _count(state, job, tap.delivered_text())
        _log(state, job, channel, outcome.status, outcome.error, usage, ttfb_ms=ttfb_ms)

    headers = [*_SSE_HEADERS, (b"x-request-id", job.request_id.encode())]
    return StreamResponse(events, first, headers, on_close)


async def _count(state: AppState, job: RelayJob, completion_text: str) -> Usage:
    """Usage the upstream did not report, counted with tiktoken off the event loop."""

    def count() -> Usage:
        return Usage(
            prompt_tokens=count_prompt(state.tokenizer, job.body, job.model),
            completion_tokens=state.tokenizer.count(completion_text, job.model),
            estimated=True,
        )

    return await asyncio.to_thread(count)


def _note(job: RelayJob, channel: ChannelInfo, status: int, t0: float, error: str = "") -> None:
    job.attempts.append(Attempt(channel.id, status, (time.perf_counter() - t0) * 1000.0, error))


def _log(
    state: AppState,
    job: RelayJob,
    channel: ChannelInfo | None,
    status: int,
    error: str,
    usage: Usage | None = None,
    ttfb_ms: float = 0.0,
) -> None:
    usage = usage or Usage()
    row: dict[str, Any] = {
        "request_id": job.request_id,
        "user_id": job.caller.user_id,
        "token_id": job.caller.token_id,
        "channel_id": channel.id if channel else None,
        "endpoint": job.endpoint,
        "model": job.model,
        "upstream_model": channel.upstream_model(job.model) if channel else "",
        "stream": job.stream,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage_estimated": usage.estimated,
        "status_code": status,
        "error": error[:2000],
        "latency_ms": job.elapsed_ms(),
        "ttfb_ms": ttfb_ms,
        "client_ip": job.client_ip,
    }
    state.recorder.record(**row)
