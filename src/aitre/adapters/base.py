"""The interface every upstream protocol implements for the OpenAI-format relay."""

from __future__ import annotations

from typing import Protocol

from aitre.channels.model import ChannelInfo
from aitre.relay.job import RelayJob
from aitre.relay.upstream import UpstreamRequest


class PassThroughAdapter(Protocol):
    """An upstream that speaks the client's format: we only rewrite the target, auth and model."""

    def build(self, channel: ChannelInfo, job: RelayJob) -> UpstreamRequest: ...
