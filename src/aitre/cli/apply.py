"""`aitre apply FILE`: channels, prices and groups from a JSON or TOML file (upserts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.cli.common import console, err_console, run_db
from aitre.secrets import SecretBox


def apply(
    path: Annotated[Path, typer.Argument(help="A .toml or .json file.", exists=True, dir_okay=False)],
) -> None:
    from aitre import declarative

    try:
        data = declarative.load(path)
    except ValueError as exc:  # includes TOML and JSON syntax errors
        err_console.print(f"[red]error:[/red] {path}: {exc}")
        raise typer.Exit(1) from None

    async def work(session: AsyncSession, box: SecretBox) -> declarative.Applied:
        return await declarative.apply(session, box, data)

    done = run_db(work)
    console.print(
        f"channels added: {len(done.channels_added)}, updated: {len(done.channels_updated)}; "
        f"prices set: {len(done.prices)}; groups set: {len(done.groups)}"
    )
