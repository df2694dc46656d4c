"""`aitre token ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.cli.common import JsonOption, console, run_db, table
from aitre.secrets import SecretBox
from aitre.store.models import Token, User

app = typer.Typer(no_args_is_help=True)


@app.command("create", help="Create an API key for a user; the key is printed once.")
def create(
    user: Annotated[str, typer.Option(help="User name or id.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> repo.IssuedKey:
        owner = await repo.find_user(session, user)
        return await repo.create_token(session, owner, name=name)

    issued = run_db(work)
    if quiet:
        print(issued.key)
    else:
        console.print(f"token {issued.token.id} created for {user}. Key (shown once):")
        console.print(issued.key, highlight=False)


@app.command("list", help="List API keys (never their secret part).")
def list_(
    user: Annotated[str, typer.Option(help="Only this user's keys.")] = "", as_json: JsonOption = False
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[tuple[Token, User]]:
        owner = await repo.find_user(session, user) if user else None
        return await repo.list_tokens(session, owner)

    rows = run_db(work, changes_catalog=False)
    table(
        "tokens",
        ["id", "user", "name", "key", "enabled"],
        [(t.id, u.username, t.name, t.key_hint, "yes" if t.enabled else "revoked") for t, u in rows],
        as_json,
    )


@app.command("revoke", help="Revoke an API key (by id or by the key itself).")
def revoke(ref: Annotated[str, typer.Argument(help="Token id or the key.")]) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Token:
        return await repo.revoke_token(session, ref)

    token = run_db(work)
    console.print(f"token {token.id} revoked")
