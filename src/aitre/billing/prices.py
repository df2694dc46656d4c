"""Prices and what a request costs, in integer quota units.

Prices are kept in USD as exact decimals; a request's cost is computed in decimals and rounded
up to a whole unit once, at the end, so that no amount of tiny requests can go free. The unit
is configurable (`AITRE_QUOTA_PER_USD`, 500,000 by default, as new-api).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aitre.relay.usage import Usage

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


def dec(value: Any) -> Decimal:
    """A non-negative decimal from a string or number; raises ValueError otherwise."""
    if value is None or value == "":
        return ZERO
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"a price must be a finite number >= 0, not {value!r}")
    return d


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str
    input_per_1m: Decimal = ZERO
    output_per_1m: Decimal = ZERO
    cached_input_per_1m: Decimal | None = None  # None: cached tokens cost like input
    per_call: Decimal = ZERO
    per_image: Decimal = ZERO
    image_prices: dict[str, Decimal] = field(default_factory=dict)
    per_second: Decimal = ZERO
    per_1m_chars: Decimal = ZERO

    @classmethod
    def parse(cls, model: str, data: dict[str, Any]) -> ModelPrice:
        cached = data.get("cached_input_per_1m")
        return cls(
            model=model,
            input_per_1m=dec(data.get("input_per_1m")),
            output_per_1m=dec(data.get("output_per_1m")),
            cached_input_per_1m=None if cached in (None, "") else dec(cached),
            per_call=dec(data.get("per_call")),
            per_image=dec(data.get("per_image")),
            image_prices={str(k): dec(v) for k, v in (data.get("image_prices") or {}).items()},
            per_second=dec(data.get("per_second")),
            per_1m_chars=dec(data.get("per_1m_chars")),
        )

    def as_strings(self) -> dict[str, Any]:
        return {
            "input_per_1m": str(self.input_per_1m),
            "output_per_1m": str(self.output_per_1m),
            "cached_input_per_1m": "" if self.cached_input_per_1m is None else str(self.cached_input_per_1m),
            "per_call": str(self.per_call),
            "per_image": str(self.per_image),
            "image_prices": {k: str(v) for k, v in self.image_prices.items()},
            "per_second": str(self.per_second),
            "per_1m_chars": str(self.per_1m_chars),
        }

    def image_price(self, size: str | None, quality: str | None) -> Decimal:
        for key in (f"{size}/{quality}", str(size), f"*/{quality}"):
            if key in self.image_prices:
                return self.image_prices[key]
        return self.per_image

    def usd(self, usage: Usage, size: str | None = None, quality: str | None = None) -> Decimal:
        """The list price of `usage`, in USD. Only the terms that apply are computed: this runs
        twice per request (estimate and settlement)."""
        total = self.per_call
        tokens = ZERO
        if usage.prompt_tokens:
            cached = min(usage.cached_tokens, usage.prompt_tokens)
            tokens += (usage.prompt_tokens - cached) * self.input_per_1m
            if cached:
                tokens += cached * (
                    self.input_per_1m if self.cached_input_per_1m is None else self.cached_input_per_1m
                )
        if usage.completion_tokens:
            tokens += usage.completion_tokens * self.output_per_1m
        if usage.characters:
            tokens += usage.characters * self.per_1m_chars
        if tokens:
            total += tokens / MILLION
        if usage.images:
            total += usage.images * self.image_price(size, quality)
        if usage.seconds:
            total += Decimal(str(usage.seconds)) * self.per_second
        return total


def to_units(usd: Decimal, multiplier: Decimal, units_per_usd: int) -> int:
    """USD times the group multiplier, in whole units, rounded up."""
    return math.ceil(usd * multiplier * units_per_usd)
