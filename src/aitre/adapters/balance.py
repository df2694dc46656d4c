"""The balance of an OpenAI-style account, from the billing "dashboard" endpoints that one-api,
new-api and many resellers still serve: the hard limit minus this period's usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure, UpstreamRequest, read_body

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState


async def _get_json(state: AppState, channel: ChannelInfo, path: str) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {channel.secret}"} if channel.secret else {}
    timeouts = channel_timeouts(state, channel)
    try:
        resp = await state.upstream.send(UpstreamRequest("GET", channel.api_base() + path, headers), timeouts)
        try:
            if resp.status != 200:
                return None
            data = orjson.loads(await read_body(resp, timeouts, 1024 * 1024))
        finally:
            resp.release()
    except (UpstreamFailure, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


async def dashboard_balance(state: AppState, channel: ChannelInfo) -> Decimal | None:
    sub = await _get_json(state, channel, "/dashboard/billing/subscription")
    if sub is None or sub.get("hard_limit_usd") is None:
        return None
    today = dt.datetime.now(dt.UTC).date()
    start, end = today - dt.timedelta(days=99), today + dt.timedelta(days=1)
    usage = await _get_json(state, channel, f"/dashboard/billing/usage?start_date={start}&end_date={end}")
    try:
        limit = Decimal(str(sub["hard_limit_usd"]))
        used_cents = Decimal(str((usage or {}).get("total_usage", 0)))
    except InvalidOperation:
        return None
    return (limit - used_cents / 100).quantize(Decimal("0.0001"))
