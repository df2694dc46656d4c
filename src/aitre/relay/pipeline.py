"""The relay loop shared by every endpoint: choose a channel, run one attempt on it, fail over
to another channel while nothing has reached the client, and record the outcome when every
channel failed.

Routing prefers healthy channels (breaker closed) in the highest priority tier and never sends
a channel more than its `max_concurrency` requests at once; an attempt's failure feeds the
channel's health, an upstream `Retry-After` cools the channel for that long, and a channel whose
own credentials or account were refused is disabled (the prober turns it back on when it
answers again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aitre.adapters.base import Retryable
from aitre.errors import ApiError, model_not_found
from aitre.relay.cancel import unless_disconnected
from aitre.relay.errors import CHANNEL_DEAD, channels_busy, no_channel
from aitre.relay.outcome import finish, release_slot

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

T = TypeVar("T")


def _serves(state: AppState, job: RelayJob) -> Callable[[ChannelInfo], bool]:
    group = job.caller.group
    return lambda ch: ch.allows_group(group) and state.adapter_for(ch).supports(job.endpoint, job.model)


def _usable(state: AppState, job: RelayJob) -> Callable[[ChannelInfo], bool]:
    """Serves the job and has room under its concurrency cap: a hard limit, unlike health."""
    serves, health = _serves(state, job), state.health
    return lambda ch: serves(ch) and (ch.max_concurrency <= 0 or health.inflight(ch.id) < ch.max_concurrency)


def _healthy(state: AppState) -> Callable[[ChannelInfo], bool]:
    return lambda ch: state.health.available(ch.id)


def _nowhere(state: AppState, job: RelayJob) -> ApiError:
    """Why no channel can take the job: an unknown model, full channels, or none usable now."""
    router = state.catalog.router
    if not router.known(job.model):
        return model_not_found(job.model)
    if router.pick(job.model, None, _serves(state, job)) is not None:
        return channels_busy(job.model)
    return no_channel(job.model)


def _refused(state: AppState, job: RelayJob, error: ApiError) -> ApiError:
    """Record a request that no channel served (it costs nothing); returns the error to raise."""
    finish(state, job, None, error.status, error.message)
    return error


Filters = tuple[Callable[["ChannelInfo"], bool], Callable[["ChannelInfo"], bool]]


def filters(state: AppState, job: RelayJob) -> Filters:
    """(usable, healthy) for `router.pick`, made once per request."""
    return _usable(state, job), _healthy(state)


def ensure_routable(state: AppState, job: RelayJob, route: Filters | None = None) -> ChannelInfo:
    """The first channel to try; fails now (404 / 503) if none could take the job, before
    anything is reserved or a stream has started. A refusal is logged and costs nothing."""
    usable, healthy = route or filters(state, job)
    channel = state.catalog.router.pick(job.model, None, usable, healthy)
    if channel is None:
        raise _refused(state, job, _nowhere(state, job))
    return channel


def _retry_after(error: ApiError) -> float | None:
    value = error.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _learn(state: AppState, job: RelayJob, channel: ChannelInfo, error: ApiError) -> None:
    """What a failed attempt says about its channel."""
    latency = job.attempts[-1].latency_ms if job.attempts else 0.0
    if error.code in CHANNEL_DEAD and state.settings.auto_disable:
        state.health.cool_for(channel.id, state.settings.breaker_max_cooldown_seconds, error.message)
        state.channel_ops.auto_disable(channel, error.message)
    elif error.status == 429:
        state.health.cool_for(channel.id, _retry_after(error) or 1.0, error.message)
    else:
        state.health.failure(channel.id, latency, error.message)


def _final_error(errors: list[ApiError]) -> ApiError:
    """All channels refused: if they all said "slow down", say so with the shortest wait."""
    if errors and all(e.status == 429 for e in errors):
        waits = [w for w in (_retry_after(e) for e in errors) if w is not None]
        last = errors[-1]
        if waits:
            last.headers["retry-after"] = str(max(1, round(min(waits))))
        return last
    return errors[-1]


async def with_failover(
    state: AppState,
    job: RelayJob,
    attempt: Callable[[ChannelInfo], Awaitable[T]],
    first: ChannelInfo | None = None,
    route: Filters | None = None,
) -> T:
    """Run `attempt` on channels in routing order until one succeeds or `Retryable` runs out."""
    router = state.catalog.router
    tried: set[int] = set()
    errors: list[ApiError] = []
    max_attempts = 1 + max(state.settings.retries, 0)
    usable, healthy = route or filters(state, job)
    while len(tried) < max_attempts:
        if tried:  # a short, growing pause, so a burst of failures does not hammer the next channel
            await asyncio.sleep(min(state.settings.retry_backoff_seconds * 2 ** (len(tried) - 1), 1.0))
        # `first` was chosen before admission awaited: take it only if it still has room. No
        # await between this choice and `begin`, so the concurrency cap cannot be overrun.
        if first is not None and not tried and usable(first):
            channel: ChannelInfo | None = first
        else:
            channel = router.pick(job.model, tried, usable, healthy)
        if channel is None:
            break
        tried.add(channel.id)
        state.health.begin(channel.id)
        job.slot = channel.id
        try:
            return await attempt(channel)
        except Retryable as retry:
            release_slot(state, job)
            _learn(state, job, channel, retry.error)
            errors.append(retry.error)
        except ApiError as error:
            release_slot(state, job)
            finish(state, job, channel, error.status, error.message)
            raise
        except BaseException:  # cancelled: the client went away, or the server is stopping
            release_slot(state, job)
            finish(state, job, channel, 499, "client disconnected")
            raise
    # No errors: the channels went away or filled up after admission.
    raise _refused(state, job, _final_error(errors) if errors else _nowhere(state, job))


async def admit(state: AppState, job: RelayJob, image_chat: bool = False) -> None:
    """The key's checks, the price and the reservation; a refusal is logged and costs nothing."""
    try:
        await state.accountant.admit(job, image_chat)
    except ApiError as error:
        _refused(state, job, error)
        raise


async def relay(state: AppState, job: RelayJob) -> ASGIApp:
    route = filters(state, job)
    first = ensure_routable(state, job, route)
    await admit(state, job)
    work = with_failover(state, job, lambda ch: state.adapter_for(ch).execute(state, job, ch), first, route)
    return await unless_disconnected(job.receive, work)
