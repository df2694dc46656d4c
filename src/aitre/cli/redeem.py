"""`aitre redeem ...`"""

from __future__ import annotations

import json
from typing import Annotated, cast

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import redeem
from aitre.accounts.repo import parse_amount
from aitre.billing.usage_query import iso_time, parse_time
from aitre.cli.common import JsonOption, console, run_db, settings, table
from aitre.secrets import SecretBox
from aitre.store.models import RedeemCode

app = typer.Typer(no_args_is_help=True)


@app.command("create", help="Create single-use codes that add quota; the codes are printed once.")
def create(
    quota: Annotated[str, typer.Option(help="What each code adds: units, or dollars like $5.")],
    count: Annotated[int, typer.Option(help=f"How many codes (1-{redeem.MAX_BATCH}).")] = 1,
    name: Annotated[str, typer.Option(help="A label for the batch.")] = "",
    expires: Annotated[
        str | None, typer.Option(help="Expiry: an ISO date/time, +30d, or ms since the epoch.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[redeem.IssuedCode]:
        units = parse_amount(quota, settings().quota_per_usd)
        expires_at = parse_time(expires) if expires else None
        return await redeem.create_codes(session, count=count, quota=units, name=name, expires_at=expires_at)

    issued = run_db(work)
    if as_json:
        print(json.dumps([{"id": i.row.id, "code": i.code, "quota": i.row.quota} for i in issued]))
        return
    console.print(f"{len(issued)} code(s) of {issued[0].row.quota} units each (shown once):")
    for item in issued:
        console.print(item.code, highlight=False)


@app.command("list", help="List codes, newest first (hints only).")
def list_(
    status: Annotated[str | None, typer.Option(help="unused, used or expired.")] = None,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[tuple[RedeemCode, str | None]]:
        if status not in (None, "unused", "used", "expired"):
            raise ValueError("--status must be unused, used or expired")
        rows, _ = await redeem.list_codes(session, status=cast(redeem.CodeStatus | None, status))
        return rows

    rows = run_db(work, changes_catalog=False)
    table(
        "redeem codes",
        ["id", "name", "code", "quota", "created", "expires", "used by", "used at"],
        [
            (
                c.id,
                c.name,
                c.code_hint,
                c.quota,
                iso_time(c.created_at),
                iso_time(c.expires_at) if c.expires_at else "never",
                user,
                iso_time(c.used_at) if c.used_at else None,
            )
            for c, user in rows
        ],
        as_json,
    )


@app.command("delete", help="Delete an unused code.")
def delete(code_id: Annotated[int, typer.Argument(help="Code id.")]) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> None:
        await redeem.delete_code(session, code_id)

    run_db(work)
    console.print(f"redeem code {code_id} deleted")
