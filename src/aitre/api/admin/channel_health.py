"""/api/admin/channels/health, /channels/{id}/probe, /channels/{id}/balance: what the gateway
knows about each channel right now (breaker, error rate, latency), and on-demand checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aitre.api.deps import DbDep, RecordId, StateDep
from aitre.channels.edits import get_channel
from aitre.errors import ApiError

router = APIRouter(prefix="/channels", tags=["admin: channels"])


class ChannelHealthOut(BaseModel):
    id: int
    name: str
    enabled: bool
    disabled_reason: str
    balance_usd: str | None = Field(description="Last balance the upstream reported, if it reports one.")
    balance_at: int | None
    health: dict[str, Any] = Field(
        description="This process's view: breaker, error rate, latency, in flight."
    )


@router.get("/health", summary="Health of every channel, as this gateway process sees it")
async def channel_health(state: StateDep, db: DbDep) -> list[ChannelHealthOut]:
    async with db.read() as session:
        from aitre.channels.repo import list_channels

        rows = await list_channels(session)
    return [
        ChannelHealthOut(
            id=r.id,
            name=r.name,
            enabled=r.enabled,
            disabled_reason=r.disabled_reason,
            balance_usd=r.balance or None,
            balance_at=r.balance_at,
            health=state.health.snapshot(r.id),
        )
        for r in rows
    ]


def _info(state: StateDep, channel_id: int) -> Any:
    found = next((c for c in state.catalog.router.channels if c.id == channel_id), None)
    if found is None:
        raise ApiError(404, f"no channel with id {channel_id}", code="not_found")
    return found


class ProbeOut(BaseModel):
    id: int
    ok: bool


@router.post(
    "/{channel_id}/probe", summary="Probe a channel now (re-enables it if auto-disabled and it answers)"
)
async def probe(state: StateDep, db: DbDep, channel_id: RecordId) -> ProbeOut:
    async with db.read() as session:
        await get_channel(session, channel_id)
    channel = _info(state, channel_id)
    ok = await state.adapter_for(channel).probe(state, channel)
    if ok:
        state.health.reset(channel.id)
        if not channel.enabled and channel.config.get("auto_disabled"):
            await state.channel_ops.reenable(channel)
    return ProbeOut(id=channel_id, ok=ok)


class BalanceOut(BaseModel):
    id: int
    balance_usd: str | None = Field(description="None when the upstream offers no balance endpoint.")


@router.post("/{channel_id}/balance", summary="Ask the upstream for the account's balance now")
async def balance(state: StateDep, db: DbDep, channel_id: RecordId) -> BalanceOut:
    async with db.read() as session:
        await get_channel(session, channel_id)
    value = await state.channel_ops.refresh_balance(state, _info(state, channel_id))
    return BalanceOut(id=channel_id, balance_usd=value)
