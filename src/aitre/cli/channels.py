"""`aitre channel ...`"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.channels import repo
from aitre.channels.model import CHANNEL_TYPES
from aitre.cli.common import JsonOption, console, run_db, split_csv, table
from aitre.secrets import SecretBox
from aitre.store.models import Channel

app = typer.Typer(no_args_is_help=True)


def _mapping(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise typer.BadParameter(f"expected FROM=TO, got {item!r}", param_hint="--map")
        out[src.strip()] = dst.strip()
    return out


@app.command("add", help="Add an upstream channel.")
def add(
    name: Annotated[str, typer.Argument(help="A unique name.")],
    models: Annotated[str, typer.Option(help="Comma-separated models it serves (clients' names).")],
    type: Annotated[str, typer.Option("--type", help=f"One of: {', '.join(CHANNEL_TYPES)}.")] = "openai",
    base_url: Annotated[str, typer.Option(help="Upstream base URL, e.g. https://api.openai.com/v1.")] = "",
    key: Annotated[
        str, typer.Option(help="Upstream API key (stored encrypted).", envvar="AITRE_CHANNEL_KEY")
    ] = "",
    map: Annotated[list[str] | None, typer.Option("--map", help="Model rename FROM=TO (repeatable).")] = None,
    priority: Annotated[int, typer.Option(help="Higher is tried first.")] = 0,
    weight: Annotated[int, typer.Option(help="Share of traffic within its priority tier.")] = 1,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
) -> None:
    mapping = _mapping(map or [])

    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        return await repo.add_channel(
            session,
            box,
            name=name,
            type=type,
            base_url=base_url,
            secret=key,
            models=split_csv(models),
            model_mapping=mapping,
            priority=priority,
            weight=weight,
            enabled=not disabled,
        )

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) added")


@app.command("list", help="List channels.")
def list_(as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[Channel]:
        return await repo.list_channels(session)

    rows = run_db(work, changes_catalog=False)
    table(
        "channels",
        ["id", "name", "type", "base url", "models", "mapping", "priority", "weight", "enabled", "note"],
        [
            (
                r.id,
                r.name,
                r.type,
                r.base_url or "(built-in)",
                ",".join(r.models),
                ",".join(f"{k}={v}" for k, v in r.model_mapping.items()),
                r.priority,
                r.weight,
                "yes" if r.enabled else "no",
                r.disabled_reason,
            )
            for r in rows
        ],
        as_json,
    )


def _set_enabled(ref: str, enabled: bool, reason: str) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        return await repo.set_enabled(session, ref, enabled, reason)

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) {'enabled' if enabled else 'disabled'}")


@app.command("disable", help="Stop routing to a channel.")
def disable(
    ref: Annotated[str, typer.Argument(help="Channel id or name.")],
    reason: Annotated[str, typer.Option(help="Why (shown in listings).")] = "disabled by operator",
) -> None:
    _set_enabled(ref, False, reason)


@app.command("enable", help="Route to a channel again.")
def enable(ref: Annotated[str, typer.Argument(help="Channel id or name.")]) -> None:
    _set_enabled(ref, True, "")
