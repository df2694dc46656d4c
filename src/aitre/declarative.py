"""Declarative set-up: channels, prices and groups from one JSON or TOML file, applied as
upserts (`aitre apply FILE`), so a deployment's configuration can live in version control.

    [[channels]]
    name = "openai"
    type = "openai"                      # openai | bfl | simulator
    base_url = "https://api.openai.com/v1"
    key = "sk-..."                       # or key_env = "OPENAI_API_KEY"
    models = ["gpt-4o-mini", "gpt-4o"]
    model_mapping = { "gpt-4o" = "gpt-4o-2024-11-20" }
    priority = 10
    weight = 1
    config = { first_byte_timeout = 30, max_concurrency = 50, groups = ["vip"] }

    [prices."gpt-4o-mini"]
    input_per_1m = "0.15"
    output_per_1m = "0.60"

    [groups.vip]
    multiplier = "0.8"
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.groups import set_group
from aitre.billing.price_repo import set_price
from aitre.channels.edits import update_channel
from aitre.channels.repo import ChannelError, add_channel
from aitre.secrets import SecretBox
from aitre.store.models import Channel

_CHANNEL_KEYS = {
    "name",
    "type",
    "base_url",
    "key",
    "key_env",
    "models",
    "model_mapping",
    "priority",
    "weight",
    "enabled",
    "config",
}


@dataclass
class Applied:
    channels_added: list[str] = field(default_factory=list)
    channels_updated: list[str] = field(default_factory=list)
    prices: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the file must hold an object with channels, prices and/or groups")
    unknown = set(data) - {"channels", "prices", "groups"}
    if unknown:
        raise ValueError(f"unknown sections: {', '.join(sorted(unknown))}")
    return data


def _secret(spec: dict[str, Any]) -> str | None:
    if "key_env" in spec:
        value = os.environ.get(str(spec["key_env"]))
        if value is None:
            raise ChannelError(
                f"channel {spec.get('name')!r}: environment variable {spec['key_env']} is not set"
            )
        return value
    return str(spec["key"]) if "key" in spec else None


async def apply(session: AsyncSession, box: SecretBox, data: dict[str, Any]) -> Applied:
    done = Applied()
    for name, spec in (data.get("groups") or {}).items():
        await set_group(session, name, spec.get("multiplier", "1"), spec.get("description"))
        done.groups.append(name)
    for model, spec in (data.get("prices") or {}).items():
        await set_price(session, model, spec)
        done.prices.append(model)
    for spec in data.get("channels") or []:
        unknown = set(spec) - _CHANNEL_KEYS
        if unknown:
            raise ChannelError(f"channel {spec.get('name')!r}: unknown settings {', '.join(sorted(unknown))}")
        name = str(spec.get("name") or "")
        secret = _secret(spec)
        row = await session.scalar(select(Channel).where(Channel.name == name))
        if row is None:
            await add_channel(
                session,
                box,
                name=name,
                type=str(spec.get("type", "openai")),
                base_url=str(spec.get("base_url", "")),
                secret=secret or "",
                models=list(spec.get("models") or []),
                model_mapping=dict(spec.get("model_mapping") or {}),
                priority=int(spec.get("priority", 0)),
                weight=int(spec.get("weight", 1)),
                enabled=bool(spec.get("enabled", True)),
                config=dict(spec.get("config") or {}),
            )
            done.channels_added.append(name)
        else:
            changes = {
                k: v
                for k, v in spec.items()
                if k in ("base_url", "models", "model_mapping", "priority", "weight", "enabled", "config")
            }
            if secret is not None:
                changes["secret"] = secret
            await update_channel(session, box, row, changes)
            done.channels_updated.append(name)
    return done
