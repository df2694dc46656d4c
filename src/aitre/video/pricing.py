"""What a video costs: by model, duration and size.

A video model's price (shipped in `billing/default_prices.py`, or the operator's) gives
`per_second` (USD per second of video at its standard sizes), `image_prices` keyed by size for
sizes priced otherwise (`"1792x1024": "0.50"`: per second at that size) and an optional
`per_call` (a fixed part per video). A price with none of these (a token price, the operator's
`*` for chat models) is not a video price: the model cannot make videos here.
"""

from __future__ import annotations

from decimal import Decimal

from aitre.billing.prices import ModelPrice, to_units


def is_video_price(price: ModelPrice) -> bool:
    return bool(price.per_second or price.per_call or price.image_prices)


def usd(price: ModelPrice, seconds: int, size: str) -> Decimal:
    per_second = price.image_prices.get(size, price.per_second)
    return price.per_call + per_second * seconds


def units(price: ModelPrice, seconds: int, size: str, multiplier: Decimal, per_usd: int) -> int:
    return to_units(usd(price, seconds, size), multiplier, per_usd)
