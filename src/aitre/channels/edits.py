"""Changing and removing channels, with the rules `channels.repo.add_channel` applies to new
ones. Plain functions (no HTTP): the admin API and the CLI both use them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.channels.model import BUILT_IN_TYPES
from aitre.channels.repo import ChannelError
from aitre.errors import ConflictError, NotFoundError
from aitre.secrets import SecretBox
from aitre.store.models import Channel

CHANNEL_FIELDS = (
    "name",
    "base_url",
    "secret",
    "models",
    "model_mapping",
    "priority",
    "weight",
    "enabled",
    "disabled_reason",
    "config",
)


def secret_hint(secret: str) -> str:
    """Enough of an upstream key to recognise it (`sk-…abcd`), never enough to use it."""
    if not secret:
        return ""
    if len(secret) < 12:
        return "…" + secret[-2:]
    prefix = secret[:3] if secret[:3].endswith("-") else secret[:2]
    return f"{prefix}…{secret[-4:]}"


async def get_channel(session: AsyncSession, channel_id: int) -> Channel:
    row = await session.get(Channel, channel_id)
    if row is None:
        raise NotFoundError(f"no channel with id {channel_id}")
    return row


async def check_name_free(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    found = await session.scalar(select(Channel.id).where(Channel.name == name))
    if found is not None and found != except_id:
        raise ConflictError(f"a channel named {name!r} already exists")


async def update_channel(
    session: AsyncSession, box: SecretBox, row: Channel, changes: Mapping[str, Any]
) -> Channel:
    """Apply `changes` (`CHANNEL_FIELDS`; `secret` is the plain upstream key, stored encrypted)."""
    unknown = set(changes) - set(CHANNEL_FIELDS)
    if unknown:
        raise ChannelError(f"unknown channel settings: {', '.join(sorted(unknown))}")
    if "name" in changes:
        name = str(changes["name"]).strip()
        if not name or len(name) > 128:
            raise ChannelError("a channel name is 1-128 characters")
        await check_name_free(session, name, row.id)
        row.name = name
    if "base_url" in changes:
        if row.type not in BUILT_IN_TYPES and not changes["base_url"]:
            raise ChannelError("a base URL is required for this channel type")
        row.base_url = changes["base_url"]
    if "secret" in changes:
        row.secret_enc = box.encrypt(changes["secret"] or "")
    if "models" in changes:
        models = [m.strip() for m in changes["models"] or [] if m.strip()]
        if not models:
            raise ChannelError("a channel must serve at least one model")
        row.models = list(dict.fromkeys(models))
    if "model_mapping" in changes:
        row.model_mapping = dict(changes["model_mapping"] or {})
    if "priority" in changes:
        row.priority = int(changes["priority"])
    if "weight" in changes:
        if int(changes["weight"]) < 0:
            raise ChannelError("weight must be >= 0")
        row.weight = int(changes["weight"])
    if "enabled" in changes:
        row.enabled = bool(changes["enabled"])
        row.disabled_reason = "" if row.enabled else row.disabled_reason
    if "disabled_reason" in changes:
        row.disabled_reason = changes["disabled_reason"] or ""
    if "config" in changes:
        row.config = dict(changes["config"] or {})
    await session.flush()
    return row


async def delete_channel(session: AsyncSession, row: Channel) -> None:
    """Remove a channel. Its usage logs keep its id."""
    await session.delete(row)
    await session.flush()
