"""The built-in simulator speaks several protocols at once; route each request to the adapter
of the protocol that serves it there (Flux models over BFL's API, the rest OpenAI-style)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aitre.adapters.bfl_flux import BflAdapter
from aitre.adapters.openai_compat import OpenAICompatAdapter

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState


class SimulatorAdapter:
    def __init__(self) -> None:
        self._openai = OpenAICompatAdapter()
        self._bfl = BflAdapter()

    def supports(self, endpoint: str, model: str) -> bool:
        return True

    async def execute(self, state: AppState, job: RelayJob, channel: ChannelInfo) -> ASGIApp:
        if job.endpoint == "images.generations" and job.upstream_model(channel).startswith("flux"):
            return await self._bfl.execute(state, job, channel)
        return await self._openai.execute(state, job, channel)

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return await self._openai.balance(state, channel)

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        return await self._openai.probe(state, channel)
