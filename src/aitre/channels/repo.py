"""Channel storage: create, list, update, disable. Shared by the CLI and the admin API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.adapters.bfl_models import BFL_MODELS, DEFAULT_FLUX_MAPPING
from aitre.channels.model import BUILT_IN_TYPES, CHANNEL_TYPES, ChannelInfo
from aitre.chattask.models import SHIPPED_VIDEO_MODELS
from aitre.errors import DomainError
from aitre.mj.models import MJ_MODELS
from aitre.secrets import SecretBox
from aitre.simulator import catalog as sim_catalog
from aitre.store.models import Channel
from aitre.video.models import SORA_MODELS

# What a channel of these types serves when it is made without a model list.
_DEFAULT_MODELS = {
    "videos": SORA_MODELS,
    "chat-video": (*SHIPPED_VIDEO_MODELS, "sora_remover"),
    "local-remover": ("sora_remover",),
}


class ChannelError(DomainError):
    """A channel that cannot be added or changed as asked."""


async def add_channel(
    session: AsyncSession,
    box: SecretBox,
    *,
    name: str,
    type: str,
    base_url: str = "",
    secret: str = "",
    models: list[str],
    model_mapping: dict[str, str] | None = None,
    priority: int = 0,
    weight: int = 1,
    enabled: bool = True,
    config: dict[str, Any] | None = None,
) -> Channel:
    if type not in CHANNEL_TYPES:
        raise ChannelError(f"unknown channel type {type!r}; expected one of {', '.join(CHANNEL_TYPES)}")
    if type not in BUILT_IN_TYPES and not base_url:
        raise ChannelError("a base URL is required for this channel type")
    if not models and type == "midjourney-proxy":
        models = list(MJ_MODELS)
    if not models and type in _DEFAULT_MODELS:
        models = list(_DEFAULT_MODELS[type])
    if not models:
        raise ChannelError("a channel must serve at least one model")
    if weight < 0:
        raise ChannelError("weight must be >= 0")
    if await session.scalar(select(Channel.id).where(Channel.name == name)) is not None:
        raise ChannelError(f"a channel named {name!r} already exists")
    row = Channel(
        name=name,
        type=type,
        base_url=base_url,
        secret_enc=box.encrypt(secret),
        models=list(dict.fromkeys(models)),
        model_mapping=dict(model_mapping or {}),
        priority=priority,
        weight=weight,
        enabled=enabled,
        disabled_reason="",
        config=dict(config or {}),
    )
    session.add(row)
    await session.flush()
    return row


async def find_channel(session: AsyncSession, ref: str) -> Channel:
    """A channel by id or by name."""
    stmt = (
        select(Channel).where(Channel.id == int(ref))
        if ref.isdigit()
        else select(Channel).where(Channel.name == ref)
    )
    row = await session.scalar(stmt)
    if row is None:
        raise ChannelError(f"no channel {ref!r}")
    return row


async def set_enabled(session: AsyncSession, ref: str, enabled: bool, reason: str = "") -> Channel:
    row = await find_channel(session, ref)
    row.enabled = enabled
    row.disabled_reason = "" if enabled else reason
    return row


async def list_channels(session: AsyncSession) -> list[Channel]:
    return list(await session.scalars(select(Channel).order_by(Channel.id)))


def to_info(row: Channel, box: SecretBox, simulator_base: str = "") -> ChannelInfo:
    models = list(row.models or [])
    mapping = dict(row.model_mapping or {})
    base_url = row.base_url
    if row.type == "simulator":
        base_url = base_url or simulator_base
        if (row.config or {}).get("auto_models"):
            # The bootstrap channel follows the simulator's own model list across upgrades.
            models = [*sim_catalog.all_models(), *BFL_MODELS, *MJ_MODELS]
            mapping = {**DEFAULT_FLUX_MAPPING, **mapping}
    try:
        secret = box.decrypt(row.secret_enc)
    except ValueError as exc:
        raise ValueError(f"channel {row.name!r} (id {row.id}): {exc}") from exc
    return ChannelInfo(
        id=row.id,
        name=row.name,
        type=row.type,
        base_url=base_url,
        secret=secret,
        models=frozenset(models),
        model_mapping=mapping,
        priority=row.priority,
        weight=row.weight,
        enabled=row.enabled,
        config=dict(row.config or {}),
    )
