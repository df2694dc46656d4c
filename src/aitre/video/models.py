"""OpenAI's video models and what each takes. Other video models (a reseller's, another
provider's behind a `/v1/videos`-shaped API) take any duration and size within broad bounds:
their upstream says no to what it cannot make."""

from __future__ import annotations

import re

KIND = "video"
SORA_MODELS = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")
DEFAULT_MODEL = "sora-2"
DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "720x1280"
SORA_SECONDS = ("4", "8", "12")
SORA_SIZES = ("720x1280", "1280x720")
PRO_SIZES = ("1024x1792", "1792x1024")  # sora-2-pro only
MAX_SECONDS = 120  # other models
MIN_SIDE, MAX_SIDE = 16, 4096  # other models
_SIZE = re.compile(r"([1-9][0-9]{1,3})x([1-9][0-9]{1,3})")


def is_sora(model: str) -> bool:
    return model in SORA_MODELS


def sizes(model: str) -> tuple[str, ...] | None:
    """The sizes a Sora model makes; None: any `WxH` in bounds."""
    if not is_sora(model):
        return None
    return (*SORA_SIZES, *PRO_SIZES) if "-pro" in model else SORA_SIZES


def seconds_choices(model: str) -> tuple[str, ...] | None:
    return SORA_SECONDS if is_sora(model) else None


def parse_size(size: str) -> tuple[int, int] | None:
    found = _SIZE.fullmatch(size)
    if found is None:
        return None
    width, height = int(found[1]), int(found[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        return None
    return width, height
