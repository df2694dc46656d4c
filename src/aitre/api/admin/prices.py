"""/api/admin/prices: the effective prices (shipped defaults overridden by the operator's), in USD."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from aitre.api.admin.schemas import Deleted, ListOf
from aitre.api.common import MAX_MODEL_CHARS
from aitre.api.deps import Db, DbDep
from aitre.billing import price_repo
from aitre.billing.pricebook import PriceBook
from aitre.billing.prices import ModelPrice
from aitre.errors import ApiError

router = APIRouter(prefix="/prices", tags=["admin: prices"])
# A bound that keeps every charge far inside the quota range (`accounts.repo.MAX_UNITS`), even
# times a group's multiplier: a price of 1e30 USD would overflow the balance arithmetic.
MAX_PRICE_USD = 1_000_000
PriceValue = Annotated[Decimal, Field(ge=0, le=MAX_PRICE_USD)]
Price = PriceValue | None


class PriceIn(BaseModel):
    """USD, each at most 1,000,000. Fields left out are 0 (`cached_input_per_1m`: as input)."""

    model_config = ConfigDict(extra="forbid")

    input_per_1m: Price = Field(None, description="Per 1M input tokens.")
    output_per_1m: Price = Field(None, description="Per 1M output tokens.")
    cached_input_per_1m: Price = Field(None, description="Per 1M cached input tokens.")
    per_call: Price = Field(None, description="Per request.")
    per_image: Price = Field(None, description="Per image.")
    image_prices: dict[str, PriceValue] = Field(
        default_factory=dict,
        description='Per image by "SIZE/QUALITY" or "SIZE", e.g. {"1024x1024/high": 0.17}.',
    )
    per_second: Price = Field(None, description="Per second of audio or video.")
    per_1m_chars: Price = Field(None, description="Per 1M input characters (speech).")


class PriceOut(BaseModel):
    model: str = Field(description="`*` is the price of every model without one of its own.")
    source: Literal["default", "operator"]
    input_per_1m: str
    output_per_1m: str
    cached_input_per_1m: str = Field(description="Empty: cached input costs as input.")
    per_call: str
    per_image: str
    image_prices: dict[str, str]
    per_second: str
    per_1m_chars: str

    @classmethod
    def of(cls, price: ModelPrice, operator: bool) -> PriceOut:
        return cls(model=price.model, source="operator" if operator else "default", **price.as_strings())


async def _effective(db: Db) -> tuple[dict[str, ModelPrice], set[str]]:
    async with db.read() as s:
        rows = await price_repo.list_prices(s)
    book = PriceBook()
    book.load(rows, [])
    return book.all(), {r.model for r in rows}


@router.get("", summary="Effective prices, each marked default or operator")
async def list_prices(db: DbDep) -> ListOf[PriceOut]:
    prices, own = await _effective(db)
    return ListOf(data=[PriceOut.of(p, m in own) for m, p in sorted(prices.items())])


@router.get("/{model:path}", summary="A model's effective price")
async def get_price(db: DbDep, model: str) -> PriceOut:
    prices, own = await _effective(db)
    if model not in prices:
        raise ApiError(404, f"{model} has no price (the `*` price applies, if set).", code="not_found")
    return PriceOut.of(prices[model], model in own)


@router.put("/{model:path}", summary="Set a model's price (replaces the earlier one)")
async def set_price(db: DbDep, model: str, body: PriceIn) -> PriceOut:
    if len(model) > MAX_MODEL_CHARS:
        raise ApiError(400, f"A model name has at most {MAX_MODEL_CHARS} characters.", param="model")
    fields = body.model_dump()
    async with db.write() as s:
        row = await price_repo.set_price(s, model, fields)
    return PriceOut.of(ModelPrice.parse(row.model, fields), True)


@router.delete("/{model:path}", summary="Remove the operator's price (the shipped default applies again)")
async def delete_price(db: DbDep, model: str) -> Deleted:
    async with db.write() as s:
        if not await price_repo.delete_price(s, model):
            raise ApiError(404, f"{model} has no price of the operator's own.", code="not_found")
    return Deleted(id=model)
