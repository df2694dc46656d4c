"""OpenAI and every vendor that copies its API: same paths, bearer auth, same bodies.

The request body is the client's, with only the model name mapped (and usage asked for on
streams we bill); the answer is passed through (`relay.passthrough`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.balance import dashboard_balance
from aitre.relay import multipart, passthrough
from aitre.relay.upstream import UpstreamRequest, answers

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState


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


def rebuild_form(channel: ChannelInfo, job: RelayJob) -> tuple[str, bytes]:
    """The client's multipart fields and files, in order, with the model name mapped:
    (Content-Type, body)."""
    model = job.upstream_model(channel)
    return multipart.encode([(name, model if name == "model" else value) for name, value in job.form or ()])


class OpenAICompatAdapter:
    def supports(self, endpoint: str, model: str) -> bool:
        return True

    def build(self, channel: ChannelInfo, job: RelayJob, path: str | None = None) -> UpstreamRequest:
        headers = {"Accept": "application/json, text/event-stream, */*", "X-Request-Id": job.request_id}
        if channel.secret:
            headers["Authorization"] = f"Bearer {channel.secret}"
        url = channel.api_base() + (path or job.path)
        if job.form is not None:
            headers["Content-Type"], body = rebuild_form(channel, job)
            return UpstreamRequest("POST", url, headers, body)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", url, headers, rewrite_body(channel, job))

    async def execute(self, state: AppState, job: RelayJob, channel: ChannelInfo) -> ASGIApp:
        return await passthrough.execute(state, job, channel, self.build(channel, job))

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return await dashboard_balance(state, channel)

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        headers = {"Authorization": f"Bearer {channel.secret}"} if channel.secret else {}
        req = UpstreamRequest("GET", channel.api_base() + "/models", headers)
        return await answers(state.upstream, req, passthrough.channel_timeouts(state, channel))
