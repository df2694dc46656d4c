"""/api/admin/users: list, get, create, update, top up or adjust the balance, the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aitre.accounts import passwords, repo
from aitre.accounts.repo import MAX_UNITS
from aitre.api.admin.schemas import Page, RowOut
from aitre.api.deps import Db, DbDep, PageDep, RecordId
from aitre.errors import bad_request
from aitre.store.models import User

router = APIRouter(prefix="/users", tags=["admin: users"])
Role = Literal["admin", "user"]


class UserOut(RowOut):
    id: int
    username: str
    role: str
    group: str
    enabled: bool
    quota: int = Field(description="Balance in units.")
    used_quota: int
    request_count: int
    created_at: int
    has_password: bool = Field(description="Whether the user can sign in to the console with a password.")

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls.from_row(u, group=u.group_name, has_password=bool(u.password_hash))


class AmountIn(BaseModel):
    """An amount in units (`amount`) or in dollars (`usd`), not both."""

    model_config = ConfigDict(extra="forbid")

    amount: int | None = Field(None, ge=-MAX_UNITS, le=MAX_UNITS, description="Quota units.")
    usd: Decimal | None = Field(
        None, ge=-MAX_UNITS, le=MAX_UNITS, description="US dollars, converted at AITRE_QUOTA_PER_USD."
    )

    @model_validator(mode="after")
    def _one_amount(self) -> AmountIn:
        if (self.amount is None) == (self.usd is None):
            raise ValueError("give the amount either in units (`amount`) or in dollars (`usd`)")
        return self

    def units(self, per_usd: int) -> int:
        return self.amount if self.amount is not None else repo.usd_to_units(self.usd or 0, per_usd)


class UserCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Role = "user"
    group: str = "default"
    quota: int = Field(0, ge=0, le=MAX_UNITS, description="Starting balance in units.")
    usd: Decimal | None = Field(
        None, ge=0, le=MAX_UNITS, description="Starting balance in dollars (instead of quota)."
    )

    @model_validator(mode="after")
    def _one_amount(self) -> UserCreateIn:
        if self.usd is not None and self.quota:
            raise ValueError("give the starting balance either in units (`quota`) or in dollars (`usd`)")
        return self


class UserUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    group: str | None = None
    enabled: bool | None = Field(None, description="false blocks the user: all their keys stop working.")


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(
        min_length=passwords.MIN_LENGTH,
        max_length=passwords.MAX_LENGTH,
        description=f"{passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters; kept as an argon2id hash.",
    )


class BalanceChangeIn(AmountIn):
    note: str = Field("", max_length=500, description="Why; kept in the ledger.")


class LedgerOut(RowOut):
    id: int
    created_at: int
    kind: str = Field(description="topup, redeem, adjust, or reserve/settle/refund of a request.")
    amount: int
    token_id: int | None
    hold_id: str
    note: str


class BalanceChangeOut(BaseModel):
    user: UserOut
    entry: LedgerOut


@router.get("", summary="List users")
async def list_users(
    db: DbDep,
    page: PageDep,
    name: Annotated[str | None, Query(description="Part of the user name (any case).")] = None,
    group: Annotated[str | None, Query()] = None,
    role: Annotated[Role | None, Query()] = None,
) -> Page[UserOut]:
    async with db.read(current=True) as s:
        rows, total = await repo.list_users(
            s, name=name, group=group, role=role, offset=page.offset, limit=page.per_page
        )
    return page.of([UserOut.of(u) for u in rows], total)


@router.get("/{user_id}", summary="Get a user")
async def get_user(db: DbDep, user_id: RecordId) -> UserOut:
    async with db.read(current=True) as s:
        return UserOut.of(await repo.get_user(s, user_id))


@router.post("", status_code=201, summary="Create a user")
async def create_user(db: DbDep, body: UserCreateIn) -> UserOut:
    per_usd = db.state.settings.quota_per_usd
    quota = repo.usd_to_units(body.usd, per_usd) if body.usd is not None else body.quota
    async with db.write() as s:
        user = await repo.create_user(s, body.username, role=body.role, group=body.group, quota=quota)
    return UserOut.of(user)


@router.patch("/{user_id}", summary="Change a user's role, group or status")
async def update_user(db: DbDep, user_id: RecordId, body: UserUpdateIn) -> UserOut:
    async with db.write() as s:
        user = await repo.update_user(
            s, await repo.get_user(s, user_id), role=body.role, group=body.group, enabled=body.enabled
        )
    return UserOut.of(user)


async def _change_balance(db: Db, user_id: int, units: int, kind: str, note: str) -> BalanceChangeOut:
    # Write out this process's pending ledger entries first, so the balance checked is current.
    await db.state.accountant.bank.flush()
    async with db.write() as s:
        user = await repo.get_user(s, user_id)
        entry = await repo.grant(s, user, units, kind, note)
    return BalanceChangeOut(user=UserOut.of(user), entry=LedgerOut.from_row(entry))


@router.post("/{user_id}/topup", summary="Add quota (a `topup` ledger entry)")
async def topup(db: DbDep, user_id: RecordId, body: BalanceChangeIn) -> BalanceChangeOut:
    units = body.units(db.state.settings.quota_per_usd)
    if units <= 0:
        raise bad_request("A top-up must be positive; use /adjust to take quota away.", param="amount")
    return await _change_balance(db, user_id, units, "topup", body.note)


@router.post("/{user_id}/adjust", summary="Correct the balance up or down (an `adjust` ledger entry)")
async def adjust(db: DbDep, user_id: RecordId, body: BalanceChangeIn) -> BalanceChangeOut:
    units = body.units(db.state.settings.quota_per_usd)
    if units == 0:
        raise bad_request("An adjustment of 0 changes nothing.", param="amount")
    return await _change_balance(db, user_id, units, "adjust", body.note)


@router.get("/{user_id}/ledger", summary="A user's ledger, newest first")
async def ledger(db: DbDep, page: PageDep, user_id: RecordId) -> Page[LedgerOut]:
    async with db.read(current=True) as s:
        await repo.get_user(s, user_id)
        rows, total = await repo.ledger_page(s, user_id, page.offset, page.per_page)
    return page.of([LedgerOut.from_row(e) for e in rows], total)


@router.put(
    "/{user_id}/password",
    summary="Set a user's console password (their console sessions end)",
)
async def set_password(db: DbDep, user_id: RecordId, body: PasswordIn) -> UserOut:
    async with db.write() as s:
        user = await repo.get_user(s, user_id)
        await passwords.set_password(s, user, body.password)
    return UserOut.of(user)


@router.delete(
    "/{user_id}/password",
    summary="Remove a user's console password (they sign in with a key only; their sessions end)",
)
async def remove_password(db: DbDep, user_id: RecordId) -> UserOut:
    async with db.write() as s:
        user = await repo.get_user(s, user_id)
        await passwords.set_password(s, user, None)
    return UserOut.of(user)
