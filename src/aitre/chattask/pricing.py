"""What a video or a removal asked for by chat costs, in quota units (reserved when the task is
made; the engine settles it at success and refunds it otherwise).

An operator's price for the model name itself (`aitre price set sora_video2 --per-call 0.3`, or a
`per_second` price times the video's seconds) wins. Otherwise the shipped defaults below: a
video at its video model's list price per second (OpenAI's Sora 2 prices: `sora-2` $0.10/s,
`sora-2-pro` $0.30/s at 720p and $0.50/s above), a removal at a flat price.

SEAM: the `video` kind's own pricing (`aitre.video`, by model, seconds and size) replaces
`_VIDEO_PER_SECOND` once it lands; the operator's per-name price stays first.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aitre.billing.prices import ModelPrice, to_units
from aitre.chattask.models import VideoModel

if TYPE_CHECKING:
    from aitre.state import AppState

# USD per second of video, by video model: one price, or by size (the larger sizes of sora-2-pro).
_VIDEO_PER_SECOND: dict[str, dict[str, Decimal]] = {
    "sora-2": {"*": Decimal("0.10")},
    "sora-2-pro": {"*": Decimal("0.30"), "1024x1792": Decimal("0.50"), "1792x1024": Decimal("0.50")},
}
REMOVAL_USD = Decimal("0.05")


def _operator_price(state: AppState, name: str) -> ModelPrice | None:
    """A price set for exactly this name (the catch-all `*` is for models with no price of their
    own: these have one, below)."""
    return state.accountant.prices.all().get(name)


def video_usd(state: AppState, video: VideoModel) -> Decimal | None:
    """The list price of one video (None: the operator named a video model with no price)."""
    own = _operator_price(state, video.name)
    if own is not None:
        return own.per_call + own.per_second * Decimal(video.seconds)
    table = _VIDEO_PER_SECOND.get(video.model.split("-20", 1)[0])  # dated snapshots price as the model
    if table is None:
        upstream = _operator_price(state, video.model)
        if upstream is None:
            return None
        return upstream.per_call + upstream.per_second * Decimal(video.seconds)
    per_second = table.get(video.size, table["*"])
    return per_second * Decimal(video.seconds)


def removal_usd(state: AppState, name: str) -> Decimal:
    own = _operator_price(state, name)
    return own.per_call if own is not None else REMOVAL_USD


def units(state: AppState, usd: Decimal, group: str) -> int:
    prices = state.accountant.prices
    return to_units(usd, prices.multiplier(group), state.settings.quota_per_usd)
