"""The end of a relayed request: one place that records what happened (usage log now; the
ledger's settle or refund joins it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from aitre.relay.job import Attempt, RelayJob
from aitre.relay.usage import Usage, count_prompt, prompt_size

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

T = TypeVar("T")


def note_attempt(
    job: RelayJob, channel: ChannelInfo, status: int, latency_ms: float, error: str = ""
) -> None:
    job.attempts.append(Attempt(channel.id, status, latency_ms, error))
    job.upstream_ms += latency_ms


async def waiting(job: RelayJob, work: Awaitable[T]) -> T:
    """Await `work`, which is an upstream's doing (an image maker's calls and polls): its time
    is the upstream's, not the gateway's overhead (the attempts it notes are inside it)."""
    t0 = time.perf_counter()
    before = job.upstream_ms
    try:
        return await work
    finally:
        job.upstream_ms = before + (time.perf_counter() - t0) * 1000.0


def release_slot(state: AppState, job: RelayJob) -> None:
    if job.slot is not None:
        state.health.end(job.slot)
        job.slot = None


def finish(
    state: AppState,
    job: RelayJob,
    channel: ChannelInfo | None,
    status: int,
    error: str = "",
    usage: Usage | None = None,
    ttfb_ms: float = 0.0,
) -> None:
    """Close the request's books, once: settle or refund, free the channel slot, note the
    channel's health, write the usage-log row."""
    if job.finished:
        return
    job.finished = True
    release_slot(state, job)
    if channel is not None:
        if status < 500:
            if status != 499:
                state.health.success(channel.id, ttfb_ms or job.elapsed_ms())
        else:
            state.health.failure(channel.id, job.elapsed_ms(), error)
    usage = usage or job.known_units
    books = state.books
    books.defer()
    try:
        _close_books(state, job, channel, status, error, usage, ttfb_ms)
    finally:
        books.write_deferred()  # before the answer leaves: what it cost is on disk


def _close_books(
    state: AppState,
    job: RelayJob,
    channel: ChannelInfo | None,
    status: int,
    error: str,
    usage: Usage,
    ttfb_ms: float,
) -> None:
    charged = state.accountant.close(job, status, usage)
    row: dict[str, Any] = {
        "request_id": job.request_id,
        "user_id": job.caller.user_id,
        "token_id": job.caller.token_id,
        "channel_id": channel.id if channel else None,
        "endpoint": job.endpoint,
        "model": job.model,
        "upstream_model": job.upstream_model(channel) if channel else "",
        "stream": job.stream,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage_estimated": usage.estimated,
        "status_code": status,
        "error": error[:2000],
        "latency_ms": job.elapsed_ms(),
        "ttfb_ms": ttfb_ms,
        "client_ip": job.client_ip,
        "quota": charged,
        "attempts": [
            {
                "channel_id": a.channel_id,
                "status": a.status,
                "ms": round(a.latency_ms, 1),
                "error": a.error[:300],
            }
            for a in job.attempts
        ],
    }
    state.recorder.record(row)
    job.row = row
    state.metrics.relay(
        job.endpoint,
        job.model,
        row["channel_id"],
        status,
        row["latency_ms"] / 1000.0,
        ttfb_ms / 1000.0,
        usage.prompt_tokens,
        usage.completion_tokens,
        charged,
        job.attempts,
    )


_INLINE_COUNT_CHARS = 64 * 1024


async def count_usage(state: AppState, job: RelayJob, completion_text: str) -> Usage:
    """Tokens the upstream did not report, counted with tiktoken.

    Short texts are counted inline (microseconds; the encoding was built at admission): the
    books must close even in a task being cancelled at shutdown. Long ones go to a thread.
    """

    def count() -> Usage:
        return Usage(
            prompt_tokens=count_prompt(state.tokenizer, job.body, job.model),
            completion_tokens=state.tokenizer.count(completion_text, job.model),
            estimated=True,
        )

    short_prompt = prompt_size(job.body) <= state.settings.count_inline_bytes  # a client's: may be 30 MB
    if len(completion_text) < _INLINE_COUNT_CHARS and short_prompt:
        counted = count()
    else:
        counted = await asyncio.to_thread(count)
    return job.known_units.merged(counted)
