"""Price storage: set, delete, list. Shared by the CLI and the admin API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.billing.prices import ModelPrice
from aitre.store.models import Price, now_ms


class PriceError(ValueError):
    pass


async def set_price(session: AsyncSession, model: str, fields: dict[str, Any]) -> Price:
    """Create or replace the price of `model` (validated: numbers >= 0)."""
    if not model:
        raise PriceError("a model name is required (use * for the default price)")
    try:
        parsed = ModelPrice.parse(model, fields).as_strings()
    except ValueError as exc:
        raise PriceError(str(exc)) from None
    row = await session.get(Price, model)
    if row is None:
        row = Price(model=model)
        session.add(row)
    for key, value in parsed.items():
        setattr(row, key, value)
    row.updated_at = now_ms()
    await session.flush()
    return row


async def delete_price(session: AsyncSession, model: str) -> bool:
    result = await session.execute(delete(Price).where(Price.model == model))
    return bool(getattr(result, "rowcount", 0))


async def list_prices(session: AsyncSession) -> list[Price]:
    return list(await session.scalars(select(Price).order_by(Price.model)))
