"""/api/admin/redeem-codes: batches of single-use codes that add quota (plain codes shown once)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aitre.accounts import redeem
from aitre.accounts.repo import MAX_UNITS, usd_to_units
from aitre.api.admin.schemas import MS, Deleted, ListOf, Page, RowOut, parse_moment
from aitre.api.deps import DbDep, PageDep, RecordId
from aitre.store.models import RedeemCode

router = APIRouter(prefix="/redeem-codes", tags=["admin: redeem codes"])


class CodeOut(RowOut):
    id: int
    name: str
    code_hint: str
    quota: int
    created_at: int
    expires_at: int | None
    used_by: int | None = Field(description="Id of the user who redeemed it.")
    used_by_name: str | None
    used_at: int | None

    @classmethod
    def of(cls, row: RedeemCode, used_by_name: str | None = None) -> CodeOut:
        return cls.from_row(row, used_by_name=used_by_name)


class CodeCreated(CodeOut):
    code: str = Field(description="The plain code. Shown only now: it is stored hashed.")


class CodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, le=redeem.MAX_BATCH)
    quota: int | None = Field(None, gt=0, le=MAX_UNITS, description="Units each code adds.")
    usd: Decimal | None = Field(
        None, gt=0, le=MAX_UNITS, description="Dollars each code adds (instead of quota)."
    )
    name: str = Field("", max_length=128, description="A label for the batch.")
    expires_at: int | str | None = Field(None, description=f"{MS}, an ISO time, or `+30d`; null: never.")

    @model_validator(mode="after")
    def _one_amount(self) -> CodesIn:
        if (self.quota is None) == (self.usd is None):
            raise ValueError("give what each code adds either in units (`quota`) or in dollars (`usd`)")
        return self


@router.post("", status_code=201, summary="Create a batch of codes (the codes are shown once)")
async def create_codes(db: DbDep, body: CodesIn) -> ListOf[CodeCreated]:
    quota = body.quota or usd_to_units(body.usd or 0, db.state.settings.quota_per_usd)
    async with db.write() as s:
        expires = None if body.expires_at is None else parse_moment(body.expires_at, "expires_at")
        issued = await redeem.create_codes(
            s, count=body.count, quota=quota, name=body.name, expires_at=expires
        )
    return ListOf(data=[CodeCreated(**CodeOut.of(i.row).model_dump(), code=i.code) for i in issued])


@router.get("", summary="List codes, newest first")
async def list_codes(
    db: DbDep,
    page: PageDep,
    status: Annotated[redeem.CodeStatus | None, Query(description="unused, used or expired.")] = None,
) -> Page[CodeOut]:
    async with db.read() as s:
        rows, total = await redeem.list_codes(s, status=status, offset=page.offset, limit=page.per_page)
    return page.of([CodeOut.of(c, name) for c, name in rows], total)


@router.delete("/{code_id}", summary="Delete an unused code (409 if it was used)")
async def delete_code(db: DbDep, code_id: RecordId) -> Deleted:
    async with db.write() as s:
        await redeem.delete_code(s, code_id)
    return Deleted(id=code_id)
