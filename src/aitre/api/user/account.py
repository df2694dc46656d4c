"""/api/user/balance and /api/user/redeem: the caller's balance, and redeeming a code."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from aitre.accounts import passwords, redeem, repo
from aitre.accounts.auth import Caller
from aitre.api.admin.schemas import Page
from aitre.api.admin.users import LedgerOut, PasswordIn
from aitre.api.deps import CallerDep, DbDep, PageDep, UnlimitedCallerDep

router = APIRouter(tags=["user: account"])


class BalanceOut(BaseModel):
    user_id: int
    username: str
    group: str
    quota: int = Field(description="Balance in units.")
    quota_usd: str
    used_quota: int = Field(description="Units spent so far.")
    used_usd: str
    request_count: int
    units_per_usd: int
    has_password: bool = Field(description="Whether I can sign in to the console with a password.")


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=128)


class RedeemOut(BaseModel):
    added: int = Field(description="Units the code added.")
    added_usd: str
    balance: BalanceOut


async def _balance(db: DbDep, caller: Caller) -> BalanceOut:
    per_usd = db.state.settings.quota_per_usd
    async with db.read() as s:
        user = await repo.get_user(s, caller.user_id)
    # The live balance: this process's bank includes requests not yet written to the database.
    quota = await db.state.accountant.bank.balance(caller.user_id)
    return BalanceOut(
        user_id=user.id,
        username=user.username,
        group=user.group_name,
        quota=quota,
        quota_usd=repo.units_to_usd(quota, per_usd),
        used_quota=user.used_quota,
        used_usd=repo.units_to_usd(user.used_quota, per_usd),
        request_count=user.request_count,
        units_per_usd=per_usd,
        has_password=bool(user.password_hash),
    )


@router.get("/balance", summary="My balance, in units and in USD")
async def balance(db: DbDep, caller: CallerDep) -> BalanceOut:
    return await _balance(db, caller)


@router.post("/redeem", summary="Redeem a code: its quota is added to my balance (once)")
async def redeem_code(db: DbDep, caller: CallerDep, body: RedeemIn) -> RedeemOut:
    async with db.write() as s:
        user = await repo.get_user(s, caller.user_id)
        row = await redeem.redeem(s, user, body.code)
    per_usd = db.state.settings.quota_per_usd
    return RedeemOut(
        added=row.quota,
        added_usd=repo.units_to_usd(row.quota, per_usd),
        balance=await _balance(db, caller),
    )


@router.get("/ledger", summary="My ledger (top-ups, codes, what each request held and cost), newest first")
async def ledger(db: DbDep, caller: CallerDep, page: PageDep) -> Page[LedgerOut]:
    async with db.read(current=True) as s:
        rows, total = await repo.ledger_page(s, caller.user_id, page.offset, page.per_page)
    return page.of([LedgerOut.from_row(e) for e in rows], total)


@router.put(
    "/password",
    summary="Set my console password (a key without limits only; my console sessions end)",
)
async def set_password(db: DbDep, caller: UnlimitedCallerDep, body: PasswordIn) -> BalanceOut:
    async with db.write() as s:
        await passwords.set_password(s, await repo.get_user(s, caller.user_id), body.password)
    return await _balance(db, caller)
