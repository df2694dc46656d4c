"""The built-in simulator speaks several protocols at once, and its model list says which
serves what: Flux models over BFL's API (images only), Gemini's image models over chat, the
rest OpenAI-style."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aitre.adapters import chat_images, openai_images
from aitre.adapters.bfl_flux import BflAdapter
from aitre.adapters.capability import IMAGES_GENERATE
from aitre.adapters.openai_compat import OpenAICompatAdapter
from aitre.simulator import catalog

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

_FLUX = frozenset(catalog.BFL_MODELS)
# Video models run as tasks (`adapters/videos_api.py`): nothing to forward.
_VIDEO = frozenset(catalog.VIDEO_MODELS)
# Image models the simulator answers on chat completions only (the GPT ones answer both).
_CHAT_ONLY_IMAGES = frozenset(catalog.CHAT_IMAGE_MODELS) - frozenset(catalog.IMAGE_MODELS)


class SimulatorAdapter:
    def __init__(self) -> None:
        self._openai = OpenAICompatAdapter()
        self._bfl = BflAdapter()

    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None if model in _FLUX or model in _VIDEO else self._openai.build

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        if model in _FLUX:
            return self._bfl.image_maker(capability, channel, model)

        if model in _CHAT_ONLY_IMAGES:
            return chat_images.make
        served = catalog.IMAGE_MODELS if capability == IMAGES_GENERATE else catalog.IMAGE_EDIT_MODELS
        if model not in served:
            return None
        return openai_images.generate if capability == IMAGES_GENERATE else openai_images.edit

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return await self._openai.balance(state, channel)

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        return await self._openai.probe(state, channel)
