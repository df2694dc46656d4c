"""Operator pages: channels (add, edit, test now, enable/disable, health, balance, mapping,
routing), prices (the shipped defaults and the operator's), and the run-time settings.

Every change calls the admin API's own route function with the same input model, so the console
checks and stores exactly what `/api/admin/...` would."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response

from aitre.api.admin import channel_health
from aitre.api.admin import channels as channels_api
from aitre.api.admin import prices as prices_api
from aitre.api.admin import settings as settings_api
from aitre.api.admin.channels import ChannelCreateIn, ChannelUpdateIn, DisableIn
from aitre.api.admin.prices import PriceIn
from aitre.channels.model import CHANNEL_TYPES
from aitre.console.common import positive
from aitre.console.web import Ctx
from aitre.errors import bad_request

PRICE_LABELS = {
    "input_per_1m": "Input per 1M tokens",
    "output_per_1m": "Output per 1M tokens",
    "cached_input_per_1m": "Cached input per 1M tokens",
    "per_call": "Per call",
    "per_image": "Per image",
    "per_second": "Per second",
    "per_1m_chars": "Per 1M characters",
}
PRICE_FIELDS = tuple(f for f in PriceIn.model_fields if f != "image_prices")


def _id(ctx: Ctx) -> int:
    found = positive(ctx.param("id"), "id")
    assert found is not None
    return found


def split_list(text: str) -> list[str]:
    """Models given one per line or separated by commas."""
    return [m.strip() for line in text.splitlines() for m in line.split(",") if m.strip()]


def parse_mapping(text: str, param: str = "model_mapping") -> dict[str, str]:
    """`asked=served` per line (or a JSON object)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        value = _json(text, param)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad_request("The mapping must be a JSON object of names.", param=param)
        return {str(k): v for k, v in value.items()}
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        asked, sep, served = line.partition("=")
        if not sep or not asked.strip() or not served.strip():
            raise bad_request(f"Write each mapping as asked=served, not {line.strip()!r}.", param=param)
        out[asked.strip()] = served.strip()
    return out


def _json(text: str, param: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad_request(f"{param} is not valid JSON.", param=param) from None


def _config(text: str) -> dict[str, Any]:
    value = _json(text, "config") if text.strip() else {}
    if not isinstance(value, dict):
        raise bad_request("config must be a JSON object.", param="config")
    return value


async def channels(ctx: Ctx) -> Response:
    rows = await channels_api.list_channels(ctx.db)
    health = {h.id: h for h in await channel_health.channel_health(ctx.state, ctx.db)}
    return ctx.render(
        "admin/channels.html", title="Channels", rows=rows.data, health=health, types=CHANNEL_TYPES
    )


async def create(ctx: Ctx) -> Response:
    f = ctx.form
    body = ChannelCreateIn.model_validate(
        {
            "name": f.get("name").strip(),
            "type": f.get("type", "openai"),
            "base_url": f.get("base_url").strip(),
            "key": f.get("key").strip(),
            "models": split_list(f.get("models")),
            "model_mapping": parse_mapping(f.get("model_mapping")),
            "priority": f.get("priority").strip() or 0,
            "weight": f.get("weight").strip() or 1,
            "enabled": f.has("enabled"),
            "config": _config(f.get("config")),
        }
    )
    made = await channels_api.create(ctx.db, body)
    return ctx.redirect(f"/admin/channels/{made.id}", ok=f"Channel {made.name} added.")


async def channel(ctx: Ctx) -> Response:
    channel_id = _id(ctx)
    row = await channels_api.get(ctx.db, channel_id)
    health = next(
        (h for h in await channel_health.channel_health(ctx.state, ctx.db) if h.id == channel_id), None
    )
    mapping = "\n".join(f"{k}={v}" for k, v in row.model_mapping.items())
    return ctx.render(
        "admin/channel.html",
        title=f"Channel {row.name}",
        c=row,
        health=health,
        mapping=mapping,
        config=orjson.dumps(row.config, option=orjson.OPT_INDENT_2).decode() if row.config else "",
    )


async def update(ctx: Ctx) -> Response:
    f = ctx.form
    changes: dict[str, Any] = {
        "name": f.get("name").strip(),
        "base_url": f.get("base_url").strip(),
        "models": split_list(f.get("models")),
        "model_mapping": parse_mapping(f.get("model_mapping")),
        "priority": f.get("priority").strip() or 0,
        "weight": f.get("weight").strip() or 0,
        "config": _config(f.get("config")),
    }
    if f.get("key").strip():  # blank: keep the key it has
        changes["key"] = f.get("key").strip()
    row = await channels_api.update(ctx.db, _id(ctx), ChannelUpdateIn.model_validate(changes))
    return ctx.redirect(f"/admin/channels/{row.id}", ok=f"Channel {row.name} saved.")


async def probe(ctx: Ctx) -> Response:
    channel_id = _id(ctx)
    started = time.perf_counter()
    result = await channel_health.probe(ctx.state, ctx.db, channel_id)
    ms = (time.perf_counter() - started) * 1000
    back = ctx.back(f"/admin/channels/{channel_id}")
    if result.ok:
        return ctx.redirect(back, ok=f"Channel #{channel_id} answered the test in {ms:.0f} ms.")
    return ctx.redirect(back, error=f"Channel #{channel_id} did not answer the test ({ms:.0f} ms).")


async def balance(ctx: Ctx) -> Response:
    channel_id = _id(ctx)
    result = await channel_health.balance(ctx.state, ctx.db, channel_id)
    back = ctx.back(f"/admin/channels/{channel_id}")
    if result.balance_usd is None:
        return ctx.redirect(back, error=f"Channel #{channel_id}'s upstream reports no balance.")
    return ctx.redirect(back, ok=f"Channel #{channel_id} has ${result.balance_usd} left upstream.")


async def enable(ctx: Ctx) -> Response:
    row = await channels_api.enable(ctx.db, _id(ctx))
    return ctx.redirect(ctx.back(f"/admin/channels/{row.id}"), ok=f"Channel {row.name} enabled.")


async def disable(ctx: Ctx) -> Response:
    reason = ctx.form.get("reason").strip() or "disabled by operator"
    row = await channels_api.disable(ctx.db, _id(ctx), DisableIn(reason=reason))
    return ctx.redirect(ctx.back(f"/admin/channels/{row.id}"), ok=f"Channel {row.name} disabled.")


async def delete(ctx: Ctx) -> Response:
    channel_id = _id(ctx)
    await channels_api.delete(ctx.db, channel_id)
    return ctx.redirect("/admin/channels", ok=f"Channel #{channel_id} deleted.")


# --- prices ------------------------------------------------------------------------------------
async def prices(ctx: Ctx) -> Response:
    rows = (await prices_api.list_prices(ctx.db)).data
    needle = ctx.query.get("q", "").strip().lower()[:128]
    source = ctx.query.get("source", "")
    shown = [p for p in rows if (not needle or needle in p.model.lower()) and (source in ("", p.source))]
    return ctx.render(
        "admin/prices.html",
        title="Prices",
        rows=shown,
        total=len(rows),
        q=needle,
        source=source,
        fields=[(f, PRICE_LABELS.get(f, f)) for f in PRICE_FIELDS],
        edit=ctx.query.get("model", "")[:128],
        editing=next((p for p in rows if p.model == ctx.query.get("model")), None),
    )


async def set_price(ctx: Ctx) -> Response:
    f = ctx.form
    model = f.get("model").strip()
    if not model:
        raise bad_request("Name the model.", param="model")
    fields: dict[str, Any] = f.values(*PRICE_FIELDS)
    images = parse_mapping(f.get("image_prices"), "image_prices")
    body = PriceIn.model_validate({**fields, "image_prices": images})
    await prices_api.set_price(ctx.db, model, body)
    return ctx.redirect("/admin/prices?q=" + model.lower()[:64], ok=f"Price of {model} set.")


async def delete_price(ctx: Ctx) -> Response:
    model = ctx.form.get("model").strip()
    await prices_api.delete_price(ctx.db, model)
    return ctx.redirect("/admin/prices", ok=f"The operator's price of {model} removed.")


# --- run-time settings -------------------------------------------------------------------------
async def settings(ctx: Ctx) -> Response:
    rows = (await settings_api.list_settings(ctx.db)).data
    return ctx.render("admin/settings.html", title="Settings", rows=rows)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


async def change_settings(ctx: Ctx) -> Response:
    rows = {r.name: r for r in (await settings_api.list_settings(ctx.db)).data}
    changes: dict[str, Any] = {}
    for name in ctx.form.getlist("reset"):
        if name in rows:
            changes[name] = None
    for name, row in rows.items():
        if name in changes or not ctx.form.has(f"s-{name}"):
            continue
        sent = ctx.form.get(f"s-{name}").strip()
        if sent != _shown(row.value):
            changes[name] = sent
    if not changes:
        return ctx.redirect("/admin/settings", ok="Nothing changed.")
    await settings_api.change_settings(ctx.db, changes)
    return ctx.redirect("/admin/settings", ok=f"Saved: {', '.join(sorted(changes))}.")
