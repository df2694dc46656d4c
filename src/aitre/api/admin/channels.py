"""/api/admin/channels: upstream accounts. Secrets go in, only a hint of them comes out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from aitre.accounts.repo import MAX_INT32
from aitre.api.admin.schemas import Deleted, ListOf, ModelName, RowOut
from aitre.api.deps import Db, DbDep, RecordId
from aitre.channels import repo
from aitre.channels.edits import (
    check_name_free,
    delete_channel,
    get_channel,
    secret_hint,
    update_channel,
)
from aitre.channels.model import CHANNEL_TYPES
from aitre.secrets import SecretBox
from aitre.store.models import Channel

router = APIRouter(prefix="/channels", tags=["admin: channels"])


class ChannelOut(RowOut):
    id: int
    name: str
    type: str
    base_url: str
    key_hint: str = Field(description="The upstream key, abbreviated (`sk-…abcd`).")
    models: list[str]
    model_mapping: dict[str, str]
    priority: int
    weight: int
    enabled: bool
    disabled_reason: str
    config: dict[str, Any]
    created_at: int

    @classmethod
    def of(cls, row: Channel, box: SecretBox) -> ChannelOut:
        return cls.from_row(
            row,
            key_hint=secret_hint(box.decrypt(row.secret_enc)),
            models=list(row.models or []),
            model_mapping=dict(row.model_mapping or {}),
            config=dict(row.config or {}),
        )


class ChannelUpdateIn(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    base_url: str | None = Field(None, max_length=512)
    key: str | None = Field(None, description="A new upstream key (rotation); stored encrypted.")
    models: list[ModelName] | None = Field(None, description="Models it serves, by the names clients use.")
    model_mapping: dict[ModelName, ModelName] | None = Field(
        None, description="{client name: upstream name}."
    )
    priority: int | None = Field(
        None, ge=-MAX_INT32, le=MAX_INT32, description="Higher tiers are tried first."
    )
    weight: int | None = Field(None, ge=0, le=MAX_INT32, description="Share of traffic within its tier.")
    enabled: bool | None = None
    disabled_reason: str | None = None
    config: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        if "key" in out:
            out["secret"] = out.pop("key")
        return out


class ChannelCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    type: str = Field("openai", description=f"One of: {', '.join(CHANNEL_TYPES)}.")
    base_url: str = Field("", max_length=512, description="e.g. https://api.openai.com/v1")
    key: str = Field("", description="The upstream API key; stored encrypted.")
    models: list[ModelName] = Field(min_length=1)
    model_mapping: dict[ModelName, ModelName] = Field(default_factory=dict)
    priority: int = Field(0, ge=-MAX_INT32, le=MAX_INT32)
    weight: int = Field(1, ge=0, le=MAX_INT32)
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class DisableIn(BaseModel):
    reason: str = Field("disabled by operator", max_length=1000)


@router.get("", summary="List channels (secrets as hints only)")
async def list_channels(db: DbDep) -> ListOf[ChannelOut]:
    async with db.read() as s:
        rows = await repo.list_channels(s)
    return ListOf(data=[ChannelOut.of(r, db.state.box) for r in rows])


@router.get("/{channel_id}", summary="Get a channel")
async def get(db: DbDep, channel_id: RecordId) -> ChannelOut:
    async with db.read() as s:
        return ChannelOut.of(await get_channel(s, channel_id), db.state.box)


@router.post("", status_code=201, summary="Add a channel")
async def create(db: DbDep, body: ChannelCreateIn) -> ChannelOut:
    async with db.write() as s:
        await check_name_free(s, body.name)
        row = await repo.add_channel(
            s,
            db.state.box,
            name=body.name,
            type=body.type,
            base_url=body.base_url,
            secret=body.key,
            models=[m.strip() for m in body.models if m.strip()],
            model_mapping=body.model_mapping,
            priority=body.priority,
            weight=body.weight,
            enabled=body.enabled,
            config=body.config,
        )
    return ChannelOut.of(row, db.state.box)


@router.patch("/{channel_id}", summary="Change a channel (rotate its key, models, routing, ...)")
async def update(db: DbDep, channel_id: RecordId, body: ChannelUpdateIn) -> ChannelOut:
    async with db.write() as s:
        row = await update_channel(s, db.state.box, await get_channel(s, channel_id), body.changes())
    return ChannelOut.of(row, db.state.box)


@router.delete("/{channel_id}", summary="Delete a channel")
async def delete(db: DbDep, channel_id: RecordId) -> Deleted:
    async with db.write() as s:
        await delete_channel(s, await get_channel(s, channel_id))
    return Deleted(id=channel_id)


@router.post("/{channel_id}/enable", summary="Route to a channel again")
async def enable(db: DbDep, channel_id: RecordId) -> ChannelOut:
    return await _set_enabled(db, channel_id, True, "")


@router.post("/{channel_id}/disable", summary="Stop routing to a channel")
async def disable(db: DbDep, channel_id: RecordId, body: DisableIn | None = None) -> ChannelOut:
    return await _set_enabled(db, channel_id, False, (body or DisableIn()).reason)


async def _set_enabled(db: Db, channel_id: int, enabled: bool, reason: str) -> ChannelOut:
    async with db.write() as s:
        row = await get_channel(s, channel_id)
        await repo.set_enabled(s, str(row.id), enabled, reason)
    return ChannelOut.of(row, db.state.box)
