"""/api/admin/usage/summary: requests, tokens and quota by day and by model."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.api.admin.schemas import DayTotals, ModelTotals, SummaryOut, Totals
from aitre.api.deps import DbDep, LogFilterDep
from aitre.billing import usage_query
from aitre.billing.usage_query import LogFilter

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
