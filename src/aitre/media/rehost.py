"""Download what an upstream's answer links to (images, samples), so that it can be copied into
our media store: upstream links expire (OpenAI's after an hour, BFL's after minutes), ours do not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitre.adapters.base import Retryable
from aitre.errors import ApiError
from aitre.media.fetch import FetchRefused
from aitre.relay.errors import error_from_failure
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

_LIMIT = 64 * 1024 * 1024


async def fetch_upstream_media(
    state: AppState, channel: ChannelInfo, url: str, headers: dict[str, str] | None = None
) -> bytes:
    """Download a file an upstream pointed to.

    On the channel's own origin (the base URL its operator configured) it goes through the
    upstream client, with the channel's credentials (`headers`, by default its bearer key).
    Anywhere else the upstream chose the address, and an answer can be steered by a prompt
    (`![x](http://127.0.0.1:...)`): it goes through the guarded fetcher, without credentials,
    and an address the fetcher refuses makes the answer a bad one (502, worth another channel)."""
    if channel.same_origin(url):
        if headers is None and channel.secret:
            headers = {"Authorization": f"Bearer {channel.secret}"}
        try:
            return await state.upstream.download(url, channel_timeouts(state, channel), _LIMIT, headers)
        except UpstreamFailure as failure:
            raise Retryable(error_from_failure(failure)) from failure
    try:
        return (await state.fetcher.fetch(url, max_bytes=_LIMIT)).data
    except FetchRefused as refused:
        message = f"The upstream answered with a link the gateway does not fetch: {refused.message}"
        raise Retryable(ApiError(502, message, type="upstream_error", code="upstream_bad_url")) from None
