"""Which channel serves a request: the enabled channels that serve the model, the highest
priority tier first, weighted random within a tier, never a channel already tried."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from aitre.channels.model import ChannelInfo


class ChannelRouter:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._channels: list[ChannelInfo] = []
        self._by_model: dict[str, list[ChannelInfo]] = {}
        self._wildcard: list[ChannelInfo] = []
        # Per model, an answer worked out from the channel set (whether the model's channels
        # only make images: `facades.image_chat`), kept until the set changes.
        self.memo: dict[str, Any] = {}

    def load(self, channels: Iterable[ChannelInfo]) -> None:
        self._channels = sorted(channels, key=lambda c: (-c.priority, c.id))
        by_model: dict[str, list[ChannelInfo]] = {}
        wildcard: list[ChannelInfo] = []
        for ch in self._channels:
            if not ch.enabled:
                continue
            if "*" in ch.models:
                wildcard.append(ch)
            for model in ch.models:
                if model != "*":
                    by_model.setdefault(model, []).append(ch)
        self._by_model = by_model
        self._wildcard = wildcard
        self.memo = {}

    @property
    def channels(self) -> list[ChannelInfo]:
        return self._channels

    def models(self) -> list[str]:
        """Every model some enabled channel serves by name."""
        return sorted(self._by_model)

    def named(self, model: str) -> bool:
        """Served by name (not only by a wildcard) by an enabled channel."""
        return model in self._by_model

    def known(self, model: str) -> bool:
        """Served by any channel at all, enabled or not (tells 404 apart from 503)."""
        return any(ch.serves(model) for ch in self._channels)

    def candidates(self, model: str) -> list[ChannelInfo]:
        named = self._by_model.get(model)
        if not self._wildcard:
            return named or []
        return sorted([*(named or ()), *self._wildcard], key=lambda c: (-c.priority, c.id))

    def pick(
        self,
        model: str,
        exclude: set[int] | None = None,
        usable: Callable[[ChannelInfo], bool] | None = None,
        healthy: Callable[[ChannelInfo], bool] | None = None,
    ) -> ChannelInfo | None:
        """`usable`: may serve this request at all. `healthy`: should, right now; when no usable
        channel is healthy, the usable ones are tried anyway (a cooled channel may be back)."""
        pool = self.candidates(model)
        if len(pool) == 1 and not exclude:  # the common case: one channel for the model
            only = pool[0]
            return only if usable is None or usable(only) else None
        if exclude or usable:
            pool = [c for c in pool if c.id not in (exclude or ()) and (usable is None or usable(c))]
        if healthy is not None:
            pool = [c for c in pool if healthy(c)] or pool
        if not pool:
            return None
        top = pool[0].priority
        tier = [c for c in pool if c.priority == top]
        if len(tier) == 1:
            return tier[0]
        total = sum(max(c.weight, 0) for c in tier)
        if total <= 0:
            return self._rng.choice(tier)
        point = self._rng.uniform(0, total)
        for ch in tier:
            point -= max(ch.weight, 0)
            if point <= 0:
                return ch
        return tier[-1]
