"""The relay loop shared by every endpoint: choose a channel, run one attempt on it, fail over
to another channel while nothing has reached the client, and record the outcome when every
channel failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aitre.adapters.base import Retryable
from aitre.errors import ApiError, model_not_found
from aitre.relay.errors import no_channel
from aitre.relay.outcome import finish

if TYPE_CHECKING:
    from starlette.responses import Response

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.relay.streaming import StreamResponse
    from aitre.state import AppState

T = TypeVar("T")


def _usable(state: AppState, job: RelayJob) -> Callable[[ChannelInfo], bool]:
    return lambda ch: state.adapter_for(ch).supports(job.endpoint, job.model)


def ensure_routable(state: AppState, job: RelayJob) -> None:
    """Fail now (404 / 503) if no channel could take the job: before a stream has started."""
    router = state.catalog.router
    if router.pick(job.model, None, _usable(state, job)) is None:
        raise model_not_found(job.model) if not router.known(job.model) else no_channel(job.model)


async def with_failover(state: AppState, job: RelayJob, attempt: Callable[[ChannelInfo], Awaitable[T]]) -> T:
    """Run `attempt` on channels in routing order until one succeeds or `Retryable` runs out."""
    router = state.catalog.router
    tried: set[int] = set()
    last_error: ApiError | None = None
    max_attempts = 1 + max(state.settings.retries, 0)
    while len(tried) < max_attempts:
        channel = router.pick(job.model, tried, _usable(state, job))
        if channel is None:
            break
        tried.add(channel.id)
        try:
            return await attempt(channel)
        except Retryable as retry:
            last_error = retry.error
        except ApiError as error:
            finish(state, job, channel, error.status, error.message)
            raise
    if last_error is None:
        raise model_not_found(job.model) if not router.known(job.model) else no_channel(job.model)
    finish(state, job, None, last_error.status, last_error.message)
    raise last_error


async def admit(state: AppState, job: RelayJob, image_chat: bool = False) -> None:
    """The key's checks, the price and the reservation; a refusal is logged and costs nothing."""
    try:
        await state.accountant.admit(job, image_chat)
    except ApiError as error:
        finish(state, job, None, error.status, error.message)
        raise


async def relay(state: AppState, job: RelayJob) -> Response | StreamResponse:
    ensure_routable(state, job)
    await admit(state, job)
    return await with_failover(state, job, lambda ch: state.adapter_for(ch).execute(state, job, ch))
