"""Copy images an upstream returned as links into our media store, and link to our copy:
upstream links expire (OpenAI's after an hour, BFL's after minutes), ours do not."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aitre.adapters.base import Retryable
from aitre.relay.errors import error_from_failure
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

_LIMIT = 64 * 1024 * 1024


async def fetch_upstream_media(state: AppState, channel: ChannelInfo, url: str) -> bytes:
    """Download a file an upstream pointed to; its key goes along only to its own host."""
    headers = (
        {"Authorization": f"Bearer {channel.secret}"} if channel.secret and channel.same_origin(url) else None
    )
    try:
        return await state.upstream.download(url, channel_timeouts(state, channel), _LIMIT, headers)
    except UpstreamFailure as failure:
        raise Retryable(error_from_failure(failure)) from failure


async def rehost_image_urls(state: AppState, job: RelayJob, channel: ChannelInfo, data: Any) -> Any:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return data

    async def one(item: Any) -> None:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"].startswith("http"):
            stored = await state.media.save(await fetch_upstream_media(state, channel, item["url"]))
            item["url"] = stored.url

    await asyncio.gather(*(one(i) for i in items))
    return data
