"""Usage over time and by model, channel and user: what the console's dashboards draw, and what
`/api/admin/usage/dashboard` and `/api/user/usage/dashboard` answer.

Each part is one aggregate query over the filtered rows (the `created_at` index bounds the range),
in SQL that SQLite and PostgreSQL both run. Latency and time to first byte are means per bucket;
a request whose first byte time is 0 (refused before any upstream call) is left out of that mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.billing.usage_query import LogFilter
from aitre.store.models import Channel, UsageLog, User

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
Bucket = Literal["auto", "hour", "day"]
By = Literal["model", "channel", "user"]


@dataclass(frozen=True, slots=True)
class Point:
    """Totals of one slice: a time bucket (`key` its start, ms) or a model, channel or user."""

    key: str | int | None
    label: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    quota: int
    latency_ms: float  # mean
    ttfb_ms: float  # mean over requests that got a first byte

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Dashboard:
    since: int | None
    until: int | None
    bucket_ms: int
    series: list[Point]
    by_model: list[Point]
    by_channel: list[Point]
    by_user: list[Point]


def bucket_ms(bucket: Bucket, since: int | None, until: int | None, now_ms: int) -> int:
    """An hour for a range of up to three days, else a day (`auto`)."""
    if bucket == "hour":
        return HOUR_MS
    if bucket == "day":
        return DAY_MS
    span = (until or now_ms) - (since if since is not None else 0)
    return HOUR_MS if span <= 3 * DAY_MS else DAY_MS


def _measures() -> list[Any]:
    first_byte = case((UsageLog.ttfb_ms > 0, UsageLog.ttfb_ms), else_=None)
    return [
        func.count(),
        func.coalesce(func.sum(case((UsageLog.status_code != 200, 1), else_=0)), 0),
        func.coalesce(func.sum(UsageLog.prompt_tokens), 0),
        func.coalesce(func.sum(UsageLog.completion_tokens), 0),
        func.coalesce(func.sum(UsageLog.quota), 0),
        func.coalesce(func.avg(UsageLog.latency_ms), 0.0),
        func.coalesce(func.avg(first_byte), 0.0),
    ]


def _point(key: Any, label: str, numbers: list[Any]) -> Point:
    requests, errors, prompt, completion, quota, latency, ttfb = numbers
    return Point(
        key,
        label,
        int(requests),
        int(errors),
        int(prompt),
        int(completion),
        int(quota),
        round(float(latency), 1),
        round(float(ttfb), 1),
    )


async def series(session: AsyncSession, filt: LogFilter, step_ms: int) -> list[Point]:
    """One point per bucket that has requests, oldest first; `key` is the bucket's start (ms)."""
    bucket = UsageLog.created_at // step_ms
    stmt = select(bucket.label("b"), *_measures()).where(*filt.conditions()).group_by(bucket).order_by(bucket)
    return [_point(int(b) * step_ms, "", numbers) for b, *numbers in (await session.execute(stmt)).all()]


async def breakdown(session: AsyncSession, filt: LogFilter, by: By, top: int = 10) -> list[Point]:
    """The `top` models, channels or users by cost (then requests), with their names."""
    key: Any
    name: ColumnElement[Any] | None = None
    stmt: Any
    if by == "model":
        key = UsageLog.model
        stmt = select(key.label("k"), *_measures())
    elif by == "channel":
        key, name = UsageLog.channel_id, func.max(Channel.name)
        joined = Channel.id == UsageLog.channel_id
        stmt = select(key.label("k"), name, *_measures()).outerjoin(Channel, joined)
    else:
        key, name = UsageLog.user_id, func.max(User.username)
        stmt = select(key.label("k"), name, *_measures()).outerjoin(User, User.id == UsageLog.user_id)
    stmt = (
        stmt.where(*filt.conditions())
        .group_by(key)
        .order_by(func.sum(UsageLog.quota).desc(), func.count().desc(), key)
        .limit(top)
    )
    out = []
    for row in (await session.execute(stmt)).all():
        if name is None:
            k, *numbers = row
            label = str(k)
        else:
            k, found, *numbers = row
            label = found or ("(none)" if k is None else f"#{k}")
        out.append(_point(k, label, numbers))
    return out


async def dashboard(
    session: AsyncSession, filt: LogFilter, step_ms: int, *, operator: bool, top: int = 10
) -> Dashboard:
    """The series and the breakdowns; a user's own (`operator` False) has no channels or users."""
    by_channel = await breakdown(session, filt, "channel", top) if operator else []
    by_user = await breakdown(session, filt, "user", top) if operator else []
    return Dashboard(
        since=filt.since,
        until=filt.until,
        bucket_ms=step_ms,
        series=await series(session, filt, step_ms),
        by_model=await breakdown(session, filt, "model", top),
        by_channel=by_channel,
        by_user=by_user,
    )
