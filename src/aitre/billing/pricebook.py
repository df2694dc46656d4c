"""Prices and group multipliers as the relay sees them: in memory, refreshed with the catalog."""

from __future__ import annotations

from decimal import Decimal

from aitre.billing.default_prices import DEFAULT_PRICES
from aitre.billing.prices import ModelPrice, dec
from aitre.store.models import Group, Price


class PriceBook:
    def __init__(self) -> None:
        self._prices: dict[str, ModelPrice] = {m: ModelPrice.parse(m, d) for m, d in DEFAULT_PRICES.items()}
        self._multipliers: dict[str, Decimal] = {}

    def load(self, prices: list[Price], groups: list[Group]) -> None:
        merged = {m: ModelPrice.parse(m, d) for m, d in DEFAULT_PRICES.items()}
        for row in prices:
            merged[row.model] = ModelPrice.parse(row.model, price_fields(row))
        self._prices = merged
        self._multipliers = {g.name: dec(g.multiplier) for g in groups}

    def price(self, model: str) -> ModelPrice | None:
        """The model's price, else the operator's default (`*`), else None: not for sale."""
        return self._prices.get(model) or self._prices.get("*")

    def multiplier(self, group: str) -> Decimal:
        return self._multipliers.get(group, Decimal(1))

    def all(self) -> dict[str, ModelPrice]:
        return dict(self._prices)


def price_fields(row: Price) -> dict[str, object]:
    return {
        "input_per_1m": row.input_per_1m,
        "output_per_1m": row.output_per_1m,
        "cached_input_per_1m": row.cached_input_per_1m,
        "per_call": row.per_call,
        "per_image": row.per_image,
        "image_prices": row.image_prices,
        "per_second": row.per_second,
        "per_1m_chars": row.per_1m_chars,
    }
