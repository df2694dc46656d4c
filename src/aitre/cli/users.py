"""`aitre user ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.cli.common import JsonOption, console, run_db, table
from aitre.secrets import SecretBox
from aitre.store.models import User

app = typer.Typer(no_args_is_help=True)


@app.command("create", help="Create a user.")
def create(
    username: Annotated[str, typer.Argument(help="Unique user name.")],
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    group: Annotated[str, typer.Option(help="Pricing group.")] = "default",
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> User:
        return await repo.create_user(session, username, role=role, group=group)

    user = run_db(work)
    console.print(f"user {user.id} ({user.username}, {user.role}) created")


@app.command("list", help="List users.")
def list_(as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[User]:
        return list(await session.scalars(select(User).order_by(User.id)))

    rows = run_db(work, changes_catalog=False)
    table(
        "users",
        ["id", "username", "role", "group", "enabled"],
        [(u.id, u.username, u.role, u.group_name, "yes" if u.enabled else "no") for u in rows],
        as_json,
    )
