"""`aitre channel ...`"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.channels import repo
from aitre.channels.edits import delete_channel, secret_hint, update_channel
from aitre.channels.model import CHANNEL_TYPES
from aitre.cli.common import JsonOption, console, run_db, split_csv, table
from aitre.cli.tokens import parse_mapping
from aitre.secrets import SecretBox
from aitre.store.models import Channel

app = typer.Typer(no_args_is_help=True)
RefArg = Annotated[str, typer.Argument(help="Channel id or name.")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="Model rename FROM=TO (repeatable).")]
ConfigOpt = Annotated[str | None, typer.Option(help="Adapter settings as a JSON object.")]


def _config(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("--config must be a JSON object")
    return value


@app.command("add", help="Add an upstream channel.")
def add(
    name: Annotated[str, typer.Argument(help="A unique name.")],
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated models it serves (clients' names); if empty, midjourney-proxy: all MJ, "
            "videos: OpenAI's video models."
        ),
    ] = "",
    type: Annotated[str, typer.Option("--type", help=f"One of: {', '.join(CHANNEL_TYPES)}.")] = "openai",
    base_url: Annotated[str, typer.Option(help="Upstream base URL, e.g. https://api.openai.com/v1.")] = "",
    key: Annotated[
        str, typer.Option(help="Upstream API key (stored encrypted).", envvar="AITRE_CHANNEL_KEY")
    ] = "",
    map: MapOpt = None,
    priority: Annotated[int, typer.Option(help="Higher is tried first.")] = 0,
    weight: Annotated[int, typer.Option(help="Share of traffic within its priority tier.")] = 1,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    config: ConfigOpt = None,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        return await repo.add_channel(
            session,
            box,
            name=name,
            type=type,
            base_url=base_url,
            secret=key,
            models=split_csv(models),
            model_mapping=parse_mapping(map or []),
            priority=priority,
            weight=weight,
            enabled=not disabled,
            config=_config(config) if config is not None else None,
        )

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) added")


@app.command("list", help="List channels (upstream keys as hints only).")
def list_(as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[tuple[Channel, str]]:
        return [(r, secret_hint(box.decrypt(r.secret_enc))) for r in await repo.list_channels(session)]

    rows = run_db(work, changes_catalog=False)
    table(
        "channels",
        [
            "id",
            "name",
            "type",
            "base url",
            "key",
            "models",
            "mapping",
            "priority",
            "weight",
            "enabled",
            "note",
        ],
        [
            (
                r.id,
                r.name,
                r.type,
                r.base_url or "(built-in)",
                hint,
                ",".join(r.models),
                ",".join(f"{k}={v}" for k, v in r.model_mapping.items()),
                r.priority,
                r.weight,
                "yes" if r.enabled else "no",
                r.disabled_reason,
            )
            for r, hint in rows
        ],
        as_json,
    )


@app.command(
    "update", help="Change a channel: rotate its key, models, mapping, routing (only the options given)."
)
def update(
    ref: RefArg,
    name: Annotated[str | None, typer.Option(help="A new unique name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="A new upstream base URL.")] = None,
    key: Annotated[str | None, typer.Option(help="A new upstream API key (rotation).")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models (replaces the list).")] = None,
    map: Annotated[
        list[str] | None, typer.Option("--map", help="Model rename FROM=TO (repeatable; replaces all).")
    ] = None,
    clear_map: Annotated[bool, typer.Option("--clear-map", help="Remove every model rename.")] = False,
    priority: Annotated[int | None, typer.Option(help="Higher is tried first.")] = None,
    weight: Annotated[int | None, typer.Option(help="Share of traffic within its tier.")] = None,
    config: ConfigOpt = None,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        given = {"name": name, "base_url": base_url, "secret": key, "priority": priority, "weight": weight}
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if models is not None:
            changes["models"] = split_csv(models)
        if map is not None or clear_map:
            changes["model_mapping"] = parse_mapping(map or [])
        if config is not None:
            changes["config"] = _config(config)
        if not changes:
            raise ValueError("nothing to change: give at least one option (see --help)")
        return await update_channel(session, box, await repo.find_channel(session, ref), changes)

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) updated")


@app.command("delete", help="Delete a channel (its usage logs keep its id).")
def delete(ref: RefArg) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        row = await repo.find_channel(session, ref)
        await delete_channel(session, row)
        return row

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) deleted")


def _set_enabled(ref: str, enabled: bool, reason: str) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Channel:
        return await repo.set_enabled(session, ref, enabled, reason)

    row = run_db(work)
    console.print(f"channel {row.id} ({row.name}) {'enabled' if enabled else 'disabled'}")


@app.command("disable", help="Stop routing to a channel.")
def disable(
    ref: RefArg,
    reason: Annotated[str, typer.Option(help="Why (shown in listings).")] = "disabled by operator",
) -> None:
    _set_enabled(ref, False, reason)


@app.command("enable", help="Route to a channel again.")
def enable(ref: RefArg) -> None:
    _set_enabled(ref, True, "")
