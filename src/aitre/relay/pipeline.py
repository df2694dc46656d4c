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
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aitre.adapters.base import Retryable
from aitre.adapters.capability import DESCRIBED, FORWARDED, OF_ENDPOINT, Capability
from aitre.errors import ApiError, model_not_found
from aitre.relay import passthrough
from aitre.relay.cancel import unless_disconnected
from aitre.relay.errors import CHANNEL_DEAD, channels_busy, detail, no_channel
from aitre.relay.outcome import finish, release_slot

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.adapters.base import Forwarder
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

T = TypeVar("T")
log = logging.getLogger("aitre")


_UNKNOWN = object()
# Pieces remembered per channel: bounded, since a wildcard channel meets any model name a client sends.
_PIECES_PER_CHANNEL = 4096

# What a request needs of a channel: (capability, model, the key's own mapping of the model).
Need = tuple[Capability, str, "str | None"]
# What routing needs, made once per request: (usable, healthy, need).
Filters = tuple[Callable[["ChannelInfo"], bool], Callable[["ChannelInfo"], bool], Need]


def piece(state: AppState, channel: ChannelInfo, need: Need) -> Any:
    """What the channel's protocol has for the need (a forwarder for forwarded capabilities, an
    image maker for images), or None when it does not serve it. Worked out on first use and
    kept in the channel's cache (a catalog reload makes new channels): on the hot path this is
    one lookup, not a walk through the adapter."""
    cache = channel.cache
    found = cache.get(need, _UNKNOWN)
    if found is _UNKNOWN:
        capability, model, mapped = need
        adapter = state.adapters[channel.type]
        find = adapter.forwarder if capability in FORWARDED else adapter.image_maker
        found = find(capability, channel, mapped or channel.upstream_model(model))
        if len(cache) < _PIECES_PER_CHANNEL:
            cache[need] = found
    return found


def _serves(state: AppState, job: RelayJob, need: Need) -> Callable[[ChannelInfo], bool]:
    """The channel's protocol serves the need, for the caller's group."""
    group = job.caller.group
    return lambda ch: ch.allows_group(group) and piece(state, ch, need) is not None


def _usable(state: AppState, job: RelayJob, need: Need) -> Callable[[ChannelInfo], bool]:
    """Serves the job and has room under its concurrency cap: a hard limit, unlike health."""
    group = job.caller.group
    return lambda ch: (
        ch.allows_group(group)
        and piece(state, ch, need) is not None
        and (ch.max_concurrency <= 0 or state.health.inflight(ch.id) < ch.max_concurrency)
    )


def _healthy(state: AppState) -> Callable[[ChannelInfo], bool]:
    return lambda ch: state.health.available(ch.id)


def _nowhere(state: AppState, job: RelayJob, need: Need) -> ApiError:
    """Why no channel can take the job: an unknown model, one that cannot do this, full
    channels, or none usable now."""
    router = state.catalog.router
    if not router.known(job.model):
        return model_not_found(job.model)
    if router.pick(job.model, None, _serves(state, job, need)) is not None:
        return channels_busy(job.model)
    enabled = router.candidates(job.model)
    if enabled and all(piece(state, ch, need) is None for ch in enabled):
        return ApiError(
            400,
            f"The model `{job.model}` cannot be used for {DESCRIBED[need[0]]}.",
            param="model",
            code="model_not_supported",
        )
    return no_channel(job.model)


def _refused(state: AppState, job: RelayJob, error: ApiError) -> ApiError:
    """Record a request that no channel served (it costs nothing); returns the error to raise."""
    finish(state, job, None, error.status, detail(error))
    return error


def filters(state: AppState, job: RelayJob, capability: Capability | None = None) -> Filters:
    """The request's `Filters`; the capability defaults to the one behind the job's endpoint."""
    model = job.model
    need = (capability or OF_ENDPOINT[job.endpoint], model, job.caller.model_mapping.get(model))
    return _usable(state, job, need), _healthy(state), need


def ensure_routable(state: AppState, job: RelayJob, route: Filters | None = None) -> ChannelInfo:
    """The first channel to try; fails now (404 / 400 / 503) if none could take the job, before
    anything is reserved or a stream has started. A refusal is logged and costs nothing."""
    usable, healthy, need = route or filters(state, job)
    channel = state.catalog.router.pick(job.model, None, usable, healthy)
    if channel is None:
        raise _refused(state, job, _nowhere(state, job, need))
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
    """Run `attempt` on channels in routing order until one succeeds or `Retryable` runs out.

    Only a cancellation (the client went away, or the server is stopping) is recorded as 499;
    any other exception is a bug: logged once with its traceback and recorded as a 500 under an
    error id, which the client sees too, so that the operator can find it."""
    router = state.catalog.router
    tried: set[int] = set()
    errors: list[ApiError] = []
    max_attempts = 1 + max(state.settings.retries, 0)
    usable, healthy, need = route or filters(state, job)
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
            state.metrics.failover(channel.id, retry.error.code)
            errors.append(retry.error)
        except ApiError as error:
            release_slot(state, job)
            finish(state, job, channel, error.status, detail(error))
            raise
        except asyncio.CancelledError:  # the client went away, or the server is stopping
            release_slot(state, job)
            finish(state, job, channel, 499, "client disconnected")
            raise
        except Exception as exc:
            raise _internal(state, job, channel, exc) from exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the books close all the same
            release_slot(state, job)
            finish(state, job, channel, 500, f"interrupted: {type(exc).__name__}")
            raise
    # No errors: the channels went away or filled up after admission.
    raise _refused(state, job, _final_error(errors) if errors else _nowhere(state, job, need))


def _internal(state: AppState, job: RelayJob, channel: ChannelInfo, exc: Exception) -> ApiError:
    """A bug met while serving `job`: logged and recorded under an error id the client gets."""
    error_id = "err_" + secrets.token_hex(6)
    log.error(
        "internal error %s serving %s (%s on channel %s)",
        error_id,
        job.request_id,
        job.endpoint,
        channel.id,
        exc_info=exc,
    )
    release_slot(state, job)
    finish(state, job, channel, 500, f"internal error {error_id}: {type(exc).__name__}: {exc}")
    return ApiError(
        500,
        f"The gateway hit an internal error (error id {error_id}).",
        type="server_error",
        code="internal_error",
    )


async def admit(state: AppState, job: RelayJob, image_chat: bool = False) -> None:
    """The key's checks, the price and the reservation; a refusal is logged and costs nothing."""
    try:
        await state.accountant.admit(job, image_chat)
    except ApiError as error:
        _refused(state, job, error)
        raise


async def relay(state: AppState, job: RelayJob) -> ASGIApp:
    """A forwarded request (chat, completions, embeddings, audio): the client's request goes to
    the channel as it is (model mapped), the answer comes back as the upstream gave it."""
    route = filters(state, job)
    first = ensure_routable(state, job, route)
    await admit(state, job)
    return await unless_disconnected(
        job.receive, with_failover(state, job, _forward(state, job, route[2]), first, route)
    )


def _forward(state: AppState, job: RelayJob, need: Need) -> Callable[[ChannelInfo], Awaitable[ASGIApp]]:
    def attempt(ch: ChannelInfo) -> Awaitable[ASGIApp]:
        forward: Forwarder | None = piece(state, ch, need)
        if forward is None:  # the router only picks channels that serve the capability
            raise RuntimeError(f"channel {ch.id} was picked for {need[0]} but does not forward it")
        return passthrough.execute(state, job, ch, forward(ch, job))

    return attempt
