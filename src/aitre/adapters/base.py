"""The interface every upstream protocol implements, and how an attempt reports failure.

A protocol hands out small pieces per capability (`capability.py`), or None where it does not
serve that capability for a model on a channel:

- `forwarder`: builds the upstream request for a client's OpenAI-format request (chat,
  completions, embeddings, audio); the answer is passed through by `relay.passthrough`, which
  also reads streams, takes usage and classifies errors (`relay.errors`);
- `image_maker`: makes images from an `images.ImageRequest` and returns `images.Images`.

The router only picks channels whose protocol serves the capability, so an endpoint or facade
never names a protocol. A piece raises `Retryable` when another channel might succeed (nothing
has reached the client yet), or `ApiError` when no channel would do better (e.g. the upstream
refused the request as invalid, or it already took the client's money for this request).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from aitre.adapters.capability import FORWARDED, Capability
from aitre.errors import ApiError

if TYPE_CHECKING:
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.relay.upstream import UpstreamRequest
    from aitre.state import AppState


class Retryable(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def json_object(raw: bytes, who: str) -> dict[str, Any]:
    """An upstream answer that must be a JSON object; anything else is worth another channel."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        message = f"{who} answered with something that is not a JSON object"
        raise Retryable(ApiError(502, message, type="upstream_error", code="upstream_bad_response"))
    return data


# The upstream request for a client's request in the upstream's own (OpenAI) format.
Forwarder = Callable[["ChannelInfo", "RelayJob"], "UpstreamRequest"]


class Adapter(Protocol):
    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        """How `capability` requests for `model` (the upstream's name) are sent upstream as they
        are, or None when this protocol cannot take them in OpenAI's format."""
        ...

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        """What makes images (`images.generate` / `images.edit`) with `model`, or None."""
        ...

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        """A cheap request that succeeds only if the channel can serve again."""
        ...

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        """USD left on the upstream account, where the upstream tells (else None)."""
        ...


def serves(adapter: Adapter, capability: Capability, channel: ChannelInfo, model: str) -> bool:
    if capability in FORWARDED:
        return adapter.forwarder(capability, channel, model) is not None
    return adapter.image_maker(capability, channel, model) is not None
