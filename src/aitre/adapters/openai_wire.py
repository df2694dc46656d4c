"""OpenAI's wire format, shared by the pieces that speak it: headers, bodies with the model
mapped, and one call whose whole answer is a JSON object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.base import Retryable, json_object
from aitre.relay import multipart, passthrough
from aitre.relay.errors import error_from_failure
from aitre.relay.upstream import UpstreamFailure, UpstreamRequest, read_body

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import FormField, RelayJob
    from aitre.state import AppState


def headers(channel: ChannelInfo, job: RelayJob) -> dict[str, str]:
    found = {
        "Accept": "application/json, text/event-stream, */*",
        "X-Request-Id": job.trace_id or job.request_id,
    }
    if channel.secret:
        found["Authorization"] = f"Bearer {channel.secret}"
    return found


def rewrite_body(channel: ChannelInfo, job: RelayJob) -> bytes:
    """The client's JSON with the upstream's model name; unknown fields pass through untouched.
    When neither the model name nor the stream options change, the client's own bytes go."""
    model = job.upstream_model(channel)
    opts = job.body.get("stream_options")
    asked = isinstance(opts, dict) and opts.get("include_usage") is True
    inject = job.wants_stream_usage_injected and not asked and channel.config.get("stream_usage", True)
    if model == job.model and not inject and (raw := job.unchanged_body()) is not None:
        return raw
    body: dict[str, Any] = dict(job.body)
    body["model"] = model
    if inject:
        body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return orjson.dumps(body)


def rebuild_form(form: list[FormField], model: str) -> tuple[str, bytes]:
    """A client's multipart fields and files, in order, with the model name mapped:
    (Content-Type, body)."""
    return multipart.encode([(name, model if name == "model" else value) for name, value in form])


def post_json(channel: ChannelInfo, job: RelayJob, path: str, body: dict[str, Any]) -> UpstreamRequest:
    found = headers(channel, job)
    found["Content-Type"] = "application/json"
    return UpstreamRequest("POST", channel.api_base() + path, found, orjson.dumps(body))


async def call_json(
    state: AppState, job: RelayJob, channel: ChannelInfo, req: UpstreamRequest, limit: int
) -> dict[str, Any]:
    """Send `req`, note the attempt, classify an error status (`passthrough.send`), and read
    the answer (at most `limit` bytes), which must be a JSON object."""
    timeouts = passthrough.channel_timeouts(state, channel)
    resp = await passthrough.send(state, job, channel, req, timeouts)
    try:
        raw = await read_body(resp, timeouts, limit)
    except UpstreamFailure as failure:
        raise Retryable(error_from_failure(failure)) from failure
    finally:
        resp.release()
    return json_object(raw, "the upstream")
