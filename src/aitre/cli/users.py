"""`aitre user ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.cli.common import JsonOption, console, run_db, settings, table
from aitre.secrets import SecretBox
from aitre.store.models import User

app = typer.Typer(no_args_is_help=True)


def parse_amount(value: str) -> int:
    """Quota units, or dollars with a `$` prefix or `usd` suffix (at AITRE_QUOTA_PER_USD)."""
    text = value.strip().lower()
    try:
        if text.startswith("$") or text.endswith("usd"):
            dollars = float(text.strip("$").removesuffix("usd").strip())
            return round(dollars * settings().quota_per_usd)
        return int(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected units (e.g. 500000) or dollars (e.g. $1), not {value!r}"
        ) from None


@app.command("create", help="Create a user.")
def create(
    username: Annotated[str, typer.Argument(help="Unique user name.")],
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    group: Annotated[str, typer.Option(help="Pricing group.")] = "default",
    quota: Annotated[str, typer.Option(help="Starting quota: units, or dollars like $5.")] = "0",
) -> None:
    amount = parse_amount(quota)

    async def work(session: AsyncSession, box: SecretBox) -> User:
        return await repo.create_user(session, username, role=role, group=group, quota=amount)

    user = run_db(work)
    console.print(f"user {user.id} ({user.username}, {user.role}) created with {amount} units")


@app.command("topup", help="Add quota to a user (negative to take it away). Recorded in the ledger.")
def topup(
    user: Annotated[str, typer.Argument(help="User name or id.")],
    amount: Annotated[str, typer.Argument(help="Units, or dollars like $5.")],
    note: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
) -> None:
    units = parse_amount(amount)

    async def work(session: AsyncSession, box: SecretBox) -> int:
        row = await repo.find_user(session, user)
        await repo.grant(session, row, units, "topup" if units >= 0 else "adjust", note)
        await session.refresh(row, ["quota"])
        return row.quota

    balance = run_db(work)
    console.print(f"{user}: {units:+d} units, balance now {balance}")


def _set_enabled(ref: str, enabled: bool) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> User:
        row = await repo.find_user(session, ref)
        row.enabled = enabled
        return row

    row = run_db(work)
    console.print(f"user {row.username} {'enabled' if enabled else 'disabled'}")


@app.command("disable", help="Block a user: all their keys stop working.")
def disable(user: Annotated[str, typer.Argument(help="User name or id.")]) -> None:
    _set_enabled(user, False)


@app.command("enable", help="Unblock a user.")
def enable(user: Annotated[str, typer.Argument(help="User name or id.")]) -> None:
    _set_enabled(user, True)


@app.command("list", help="List users with their balances.")
def list_(as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[User]:
        return list(await session.scalars(select(User).order_by(User.id)))

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
