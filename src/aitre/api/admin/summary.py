"""/api/admin/usage/summary: requests, tokens and quota by day and by model."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.api.admin.schemas import DayTotals, ModelTotals, SummaryOut, Totals
from aitre.api.deps import Db, DbDep, LogFilterDep, domain_errors
from aitre.billing import usage_query, usage_stats
from aitre.billing.usage_query import LogFilter, parse_time

router = APIRouter(tags=["admin: usage"])


async def summary(session: AsyncSession, filt: LogFilter) -> SummaryOut:
    """The summary of the rows `filt` matches (admin and user APIs)."""
    days = await usage_query.summarize(session, filt, "day")
    models = await usage_query.summarize(session, filt, "model")
    total = await usage_query.totals(session, filt)
    return SummaryOut(
        since=filt.since,
        until=filt.until,
        by_day=[DayTotals.from_row(r, day=r.key) for r in days],
        by_model=[ModelTotals.from_row(r, model=r.key) for r in models],
        total=Totals.from_row(total),
    )


@router.get("/usage/summary", summary="Usage by UTC day and by model (the log filters apply)")
async def usage_summary(db: DbDep, filt: LogFilterDep) -> SummaryOut:
    async with db.read(current=True) as s:
        return await summary(s, filt)


class PointOut(BaseModel):
    key: str | int | None = Field(
        description="The bucket's start (ms), the model, or the channel's or user's id."
    )
    label: str = Field(description="The model, or the channel's or user's name (empty for time buckets).")
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    quota: int = Field(description="Units charged.")
    latency_ms: float = Field(description="Mean time to the whole answer.")
    ttfb_ms: float = Field(description="Mean time to the first byte, of requests that got one.")

    @classmethod
    def of(cls, p: usage_stats.Point) -> PointOut:
        return cls(**{f: getattr(p, f) for f in cls.model_fields})


class DashboardOut(BaseModel):
    since: int | None
    until: int | None
    bucket_ms: int = Field(description="Width of each point of `series`: an hour or a day.")
    series: list[PointOut] = Field(description="One point per bucket with requests, oldest first.")
    by_model: list[PointOut]
    by_channel: list[PointOut] = Field(description="Empty on the user API.")
    by_user: list[PointOut] = Field(description="Empty on the user API.")

    @classmethod
    def of(cls, d: usage_stats.Dashboard) -> DashboardOut:
        return cls(
            since=d.since,
            until=d.until,
            bucket_ms=d.bucket_ms,
            series=[PointOut.of(p) for p in d.series],
            by_model=[PointOut.of(p) for p in d.by_model],
            by_channel=[PointOut.of(p) for p in d.by_channel],
            by_user=[PointOut.of(p) for p in d.by_user],
        )


DEFAULT_RANGE = "-7d"


async def dashboard(
    db: Db, filt: LogFilter, bucket: usage_stats.Bucket, top: int, *, operator: bool
) -> DashboardOut:
    """The dashboard of the rows `filt` matches, the last 7 days unless it says since when."""
    if filt.since is None:
        filt = replace(filt, since=parse_time(DEFAULT_RANGE))
    step = usage_stats.bucket_ms(bucket, filt.since, filt.until, parse_time("+0s"))
    await db.state.accountant.bank.flush()  # this process's pending rows belong in it
    with domain_errors():
        found = await usage_stats.dashboard(db.state.sessions, filt, step, operator=operator, top=top)
    return DashboardOut.of(found)


BucketQuery = Annotated[
    usage_stats.Bucket, Query(description="Width of the series' points: `hour`, `day`, or `auto`.")
]
TopQuery = Annotated[int, Query(ge=1, le=100, description="How many models, channels, users.")]


@router.get(
    "/usage/dashboard",
    summary="Usage over time (requests, tokens, cost, errors, latency, TTFB) and by model, channel, user",
)
async def usage_dashboard(
    db: DbDep, filt: LogFilterDep, bucket: BucketQuery = "auto", top: TopQuery = 10
) -> DashboardOut:
    return await dashboard(db, filt, bucket, top, operator=True)
