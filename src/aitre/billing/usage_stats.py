"""Usage over time and by model, channel and user: what the console's dashboards draw, and what
`/api/admin/usage/dashboard` and `/api/user/usage/dashboard` answer.

Each part is one aggregate query over the filtered rows (the `created_at` index bounds the range),
in SQL that SQLite and PostgreSQL both run. Latency and time to first byte are means per bucket;
a request whose first byte time is 0 (refused before any upstream call) is left out of that mean.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
    """Sums (not means): slices of a finer grouping add up into coarser ones (`_Acc`)."""
    got_byte = UsageLog.ttfb_ms > 0
    return [
        func.count(),
        func.coalesce(func.sum(case((UsageLog.status_code != 200, 1), else_=0)), 0),
        func.coalesce(func.sum(UsageLog.prompt_tokens), 0),
        func.coalesce(func.sum(UsageLog.completion_tokens), 0),
        func.coalesce(func.sum(UsageLog.quota), 0),
        func.coalesce(func.sum(UsageLog.latency_ms), 0.0),
        func.coalesce(func.sum(case((got_byte, UsageLog.ttfb_ms), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((got_byte, 1), else_=0)), 0),
    ]


@dataclass(slots=True)
class _Acc:
    requests: int = 0
    errors: int = 0
    prompt: int = 0
    completion: int = 0
    quota: int = 0
    latency: float = 0.0
    ttfb: float = 0.0
    with_byte: int = 0

    def add(self, numbers: Sequence[Any]) -> _Acc:
        self.requests += int(numbers[0])
        self.errors += int(numbers[1])
        self.prompt += int(numbers[2])
        self.completion += int(numbers[3])
        self.quota += int(numbers[4])
        self.latency += float(numbers[5])
        self.ttfb += float(numbers[6])
        self.with_byte += int(numbers[7])
        return self

    def point(self, key: Any, label: str) -> Point:
        return Point(
            key,
            label,
            self.requests,
            self.errors,
            self.prompt,
            self.completion,
            self.quota,
            round(self.latency / self.requests, 1) if self.requests else 0.0,
            round(self.ttfb / self.with_byte, 1) if self.with_byte else 0.0,
        )


async def series(session: AsyncSession, filt: LogFilter, step_ms: int) -> list[Point]:
    """One point per bucket that has requests, oldest first; `key` is the bucket's start (ms)."""
    bucket = UsageLog.created_at // step_ms
    stmt = select(bucket.label("b"), *_measures()).where(*filt.conditions()).group_by(bucket).order_by(bucket)
    rows = (await session.execute(stmt)).all()
    return [_Acc().add(numbers).point(int(b) * step_ms, "") for b, *numbers in rows]


async def breakdowns(
    session: AsyncSession, filt: LogFilter, top: int = 10, *, operator: bool = True
) -> dict[By, list[Point]]:
    """The `top` models, channels and users by cost (then requests), with their names, from one
    scan: rows grouped by (model, channel, user) in the database, the groups added up here. (A
    scan per breakdown cost three times as much; the groups are as many as the combinations
    that occur, far fewer than rows.)"""
    keys: list[Any] = (
        [UsageLog.model, UsageLog.channel_id, UsageLog.user_id] if operator else [UsageLog.model]
    )
    stmt = select(*keys, *_measures()).where(*filt.conditions()).group_by(*keys)
    by: dict[By, dict[Any, _Acc]] = {"model": {}, "channel": {}, "user": {}}
    for row in (await session.execute(stmt)).all():
        numbers = row[len(keys) :]
        by["model"].setdefault(row[0], _Acc()).add(numbers)
        if operator:
            by["channel"].setdefault(row[1], _Acc()).add(numbers)
            by["user"].setdefault(row[2], _Acc()).add(numbers)

    def ranked(accs: dict[Any, _Acc]) -> list[tuple[Any, _Acc]]:
        order = sorted(accs.items(), key=lambda kv: (-kv[1].quota, -kv[1].requests, str(kv[0])))
        return order[:top]

    out: dict[By, list[Point]] = {"model": [a.point(k, str(k)) for k, a in ranked(by["model"])]}
    named: list[tuple[By, Any, Any]] = [("channel", Channel, Channel.name), ("user", User, User.username)]
    for name, table, column in named:
        chosen = ranked(by[name])
        ids = [k for k, _ in chosen if k is not None]
        names: dict[Any, str] = {}
        if ids:
            names = dict((await session.execute(select(table.id, column).where(table.id.in_(ids)))).all())
        out[name] = [a.point(k, names.get(k) or ("(none)" if k is None else f"#{k}")) for k, a in chosen]
    return out


async def dashboard(
    sessions: async_sessionmaker[AsyncSession],
    filt: LogFilter,
    step_ms: int,
    *,
    operator: bool,
    top: int = 10,
) -> Dashboard:
    """The series and the breakdowns, in two sessions at once (two scans of the range that the
    database can run side by side: SQLite in WAL mode reads on several connections, outside the
    GIL). A user's own dashboard (`operator` False) has no channels or users."""

    async def timeline() -> list[Point]:
        async with sessions() as session:
            return await series(session, filt, step_ms)

    async def parts() -> dict[By, list[Point]]:
        async with sessions() as session:
            return await breakdowns(session, filt, top, operator=operator)

    points, found = await asyncio.gather(timeline(), parts())
    return Dashboard(
        since=filt.since,
        until=filt.until,
        bucket_ms=step_ms,
        series=points,
        by_model=found["model"],
        by_channel=found["channel"] if operator else [],
        by_user=found["user"] if operator else [],
    )
