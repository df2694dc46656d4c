"""The interface every upstream protocol implements, and how an attempt reports failure.

An adapter runs one attempt of a job on one channel. It returns the client's response, raises
`Retryable` when another channel might succeed (nothing has reached the client yet), or raises
`ApiError` when no channel would do better (e.g. the upstream refused the request as invalid).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from aitre.errors import ApiError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState


class Retryable(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def json_object(raw: bytes, who: str) -> dict[str, Any]:
    """An upstream answer that must be a JSON object; anything else is worth another channel."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        message = f"{who} answered with something that is not a JSON object"
        raise Retryable(ApiError(502, message, type="upstream_error"))
    return data


class Adapter(Protocol):
    def supports(self, endpoint: str, model: str) -> bool:
        """Whether this protocol can serve `endpoint` (e.g. "images.generations") for `model`."""
        ...

    async def execute(self, state: AppState, job: RelayJob, channel: ChannelInfo) -> ASGIApp: ...

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        """A cheap request that succeeds only if the channel can serve again."""
        ...

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        """USD left on the upstream account, where the upstream tells (else None)."""
        ...
