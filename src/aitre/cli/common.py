"""Shared CLI plumbing: settings, a database session, Rich output, errors as exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.config import Settings
from aitre.secrets import SecretBox, load_or_create_key
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.store.version import bump_version

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    return Settings()


def run_db(work: Callable[[AsyncSession, SecretBox], Awaitable[T]], *, changes_catalog: bool = True) -> T:
    """Run `work` in one transaction on a migrated database; bump the catalog version so that
    running gateways pick the change up."""

    async def go() -> T:
        s = settings()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        box = SecretBox(load_or_create_key(s.secret_key, s.data_dir))
        engine = make_engine(s.resolved_database_url())
        try:
            await upgrade_to_head(engine)
            async with make_sessionmaker(engine)() as session:
                async with session.begin():
                    result = await work(session, box)
                    if changes_catalog:
                        await bump_version(session)
                await sync_live_balances(s, session.info)
                if changes_catalog and s.redis_url:
                    await _announce(s)
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except ValueError as exc:  # `errors.DomainError` and bad values the CLI parsed
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


async def sync_live_balances(s: Settings, info: dict[str, Any]) -> None:
    """Balances live in Redis when it is configured: apply committed changes there too."""
    if s.redis_url and (info.get("balance_changes") or info.get("token_changes")):
        from aitre.billing.redis_bank import RedisBalances

        balances = RedisBalances(s.redis_url, s.resolved_database_url())
        try:
            await balances.apply_external(info)
        finally:
            await balances.close()


async def _announce(s: Settings) -> None:
    """Running gateways hear of the change at once over Redis (else at their next poll)."""
    from aitre.billing.redis_bank import namespace
    from aitre.cluster import announce_catalog_change

    await announce_catalog_change(s.redis_url, namespace(s.resolved_database_url()))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], as_json: bool = False) -> None:
    """Rows as a Rich table, or as JSON objects (one list) for scripts."""
    if as_json:
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
        return
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def split_csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
