"""`aitre group ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import groups
from aitre.cli.common import JsonOption, console, run_db, table
from aitre.secrets import SecretBox
from aitre.store.models import Group

app = typer.Typer(no_args_is_help=True)


@app.command("set", help="Create a pricing group or change it (prices are multiplied by its multiplier).")
def set_(
    name: Annotated[str, typer.Argument(help="Group name.")],
    multiplier: Annotated[
        str | None, typer.Option(help="A number >= 0, e.g. 0.8 (required for a new group).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the group is for.")] = None,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> tuple[Group, bool]:
        return await groups.set_group(session, name, multiplier, description)

    row, created = run_db(work)
    console.print(f"group {row.name} {'created' if created else 'updated'}: multiplier {row.multiplier}")


@app.command("list", help="List groups with their multipliers and member counts.")
def list_(as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[tuple[Group, int]]:
        return await groups.list_groups(session)

    rows = run_db(work, changes_catalog=False)
    table(
        "groups",
        ["name", "multiplier", "users", "description"],
        [(g.name, g.multiplier, n, g.description) for g, n in rows],
        as_json,
    )


@app.command("delete", help="Delete a group (refused while users are in it).")
def delete(name: Annotated[str, typer.Argument(help="Group name.")]) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> None:
        await groups.delete_group(session, name)

    run_db(work)
    console.print(f"group {name} deleted")
