"""OpenAI and every vendor that copies its API: same paths, bearer auth, same bodies.

Chat, completions, embeddings and audio are forwarded: the client's body with only the model
name mapped (and usage asked for on streams we bill), the answer passed through
(`relay.passthrough`). Images are made through the images API, or, for image models that answer
chat (Gemini's; or any model on a channel with `config.image_chat_via = "chat"`), through chat
completions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aitre.adapters import chat_images, openai_images, openai_wire
from aitre.adapters.balance import dashboard_balance
from aitre.adapters.capability import IMAGES_GENERATE
from aitre.relay import passthrough
from aitre.relay.upstream import UpstreamRequest, answers

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState


def images_via_chat(channel: ChannelInfo, model: str) -> bool:
    """Whether this channel makes images of `model` by chat rather than the images API."""
    via = channel.config.get("image_chat_via")
    if via in ("images", "chat"):
        return bool(via == "chat")
    return model.startswith("gemini")


class OpenAICompatAdapter:
    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return self.build

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        if images_via_chat(channel, model):
            return chat_images.make
        return openai_images.generate if capability == IMAGES_GENERATE else openai_images.edit

    def build(self, channel: ChannelInfo, job: RelayJob) -> UpstreamRequest:
        # `openai_wire.headers`, inline: this runs on every forwarded request.
        headers = {
            "Accept": "application/json, text/event-stream, */*",
            "X-Request-Id": job.trace_id or job.request_id,
        }
        if channel.secret:
            headers["Authorization"] = f"Bearer {channel.secret}"
        url = channel.api_base() + job.path
        if job.form is not None:
            headers["Content-Type"], body = openai_wire.rebuild_form(job.form, job.upstream_model(channel))
            return UpstreamRequest("POST", url, headers, body)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", url, headers, openai_wire.rewrite_body(channel, job))

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return await dashboard_balance(state, channel)

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        headers = {"Authorization": f"Bearer {channel.secret}"} if channel.secret else {}
        req = UpstreamRequest("GET", channel.api_base() + "/models", headers)
        return await answers(state.upstream, req, passthrough.channel_timeouts(state, channel))
