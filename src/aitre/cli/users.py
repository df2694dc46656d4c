"""`aitre user ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.billing.usage_query import iso_time
from aitre.cli.common import JsonOption, console, run_db, settings, table
from aitre.secrets import SecretBox
from aitre.store.models import LedgerEntry, User

app = typer.Typer(no_args_is_help=True)
UserArg = Annotated[str, typer.Argument(help="User name or id.")]


@app.command("create", help="Create a user.")
def create(
    username: Annotated[str, typer.Argument(help="Unique user name.")],
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    group: Annotated[
        str, typer.Option(help="Pricing group (must exist; `default` always does).")
    ] = "default",
    quota: Annotated[str, typer.Option(help="Starting quota: units, or dollars like $5.")] = "0",
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> User:
        amount = repo.parse_amount(quota, settings().quota_per_usd)
        return await repo.create_user(session, username, role=role, group=group, quota=amount)

    user = run_db(work)
    console.print(f"user {user.id} ({user.username}, {user.role}) created with {user.quota} units")


@app.command("update", help="Change a user's role, group or status.")
def update(
    user: UserArg,
    role: Annotated[str | None, typer.Option(help="admin or user.")] = None,
    group: Annotated[str | None, typer.Option(help="Pricing group.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Unblock or block the user.", show_default=False)
    ] = None,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> User:
        row = await repo.find_user(session, user)
        return await repo.update_user(session, row, role=role, group=group, enabled=enabled)

    row = run_db(work)
    status = "enabled" if row.enabled else "disabled"
    console.print(f"user {row.username}: role {row.role}, group {row.group_name}, {status}")


@app.command("topup", help="Add quota to a user (negative to take it away). Recorded in the ledger.")
def topup(
    user: UserArg,
    amount: Annotated[str, typer.Argument(help="Units, or dollars like $5 (negative: -$5 or -1000).")],
    note: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> tuple[int, int]:
        units = repo.parse_amount(amount, settings().quota_per_usd)
        if units == 0:
            raise repo.AccountError("an amount of 0 changes nothing")
        row = await repo.find_user(session, user)
        await repo.grant(session, row, units, "topup" if units > 0 else "adjust", note)
        return units, row.quota

    units, balance = run_db(work)
    console.print(f"{user}: {units:+d} units, balance now {balance}")


def _set_enabled(ref: str, enabled: bool) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> User:
        return await repo.update_user(session, await repo.find_user(session, ref), enabled=enabled)

    row = run_db(work)
    console.print(f"user {row.username} {'enabled' if enabled else 'disabled'}")


@app.command("disable", help="Block a user: all their keys stop working.")
def disable(user: UserArg) -> None:
    _set_enabled(user, False)


@app.command("enable", help="Unblock a user.")
def enable(user: UserArg) -> None:
    _set_enabled(user, True)


@app.command("list", help="List users with their balances.")
def list_(
    name: Annotated[str | None, typer.Option(help="Only names containing this (any case).")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    role: Annotated[str | None, typer.Option(help="Only this role.")] = None,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[User]:
        rows, _ = await repo.list_users(session, name=name, group=group, role=role)
        return rows

    rows = run_db(work, changes_catalog=False)
    table(
        "users",
        ["id", "username", "role", "group", "enabled", "quota", "used", "requests"],
        [
            (
                u.id,
                u.username,
                u.role,
                u.group_name,
                "yes" if u.enabled else "no",
                u.quota,
                u.used_quota,
                u.request_count,
            )
            for u in rows
        ],
        as_json,
    )


@app.command("ledger", help="A user's ledger entries, newest first.")
def ledger(
    user: UserArg,
    limit: Annotated[int, typer.Option(help="At most this many entries.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[LedgerEntry]:
        row = await repo.find_user(session, user)
        entries, _ = await repo.ledger_page(session, row.id, 0, limit)
        return entries

    rows = run_db(work, changes_catalog=False)
    table(
        f"ledger of {user}",
        ["id", "time", "kind", "amount", "token", "note"],
        [(e.id, iso_time(e.created_at), e.kind, e.amount, e.token_id, e.note) for e in rows],
        as_json,
    )
