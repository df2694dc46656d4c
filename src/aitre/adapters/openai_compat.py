"""OpenAI and every vendor that copies its API: same paths, bearer auth, same bodies."""

from __future__ import annotations

from typing import Any

import orjson

from aitre.channels.model import ChannelInfo
from aitre.relay.job import RelayJob
from aitre.relay.upstream import UpstreamRequest


def rewrite_body(channel: ChannelInfo, job: RelayJob) -> bytes:
    """The client's JSON with the upstream's model name; usage asked for on streams we bill.

    Unknown fields pass through untouched.
    """
    body: dict[str, Any] = dict(job.body)
    body["model"] = channel.upstream_model(job.model)
    if job.wants_stream_usage_injected and channel.config.get("stream_usage", True):
        opts = body.get("stream_options")
        body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return orjson.dumps(body)


class OpenAICompatAdapter:
    def __init__(self, base_override: str = "") -> None:
        self._base_override = base_override

    def base(self, channel: ChannelInfo) -> str:
        if self._base_override and not channel.base_url:
            return self._base_override
        return channel.api_base()

    def build(self, channel: ChannelInfo, job: RelayJob) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if channel.secret:
            headers["Authorization"] = f"Bearer {channel.secret}"
        headers["X-Request-Id"] = job.request_id
        return UpstreamRequest("POST", self.base(channel) + job.path, headers, rewrite_body(channel, job))
