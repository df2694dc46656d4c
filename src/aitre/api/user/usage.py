"""/api/user/logs and /api/user/usage/summary: the caller's own requests."""

from __future__ import annotations

from fastapi import APIRouter

from aitre.api.admin.schemas import Page, SummaryOut, UserLogOut
from aitre.api.admin.summary import BucketQuery, DashboardOut, TopQuery, dashboard, summary
from aitre.api.deps import CallerDep, DbDep, PageDep, UserLogFilterDep
from aitre.billing import usage_query

router = APIRouter(tags=["user: usage"])


@router.get("/logs", summary="My requests, newest first")
async def list_logs(db: DbDep, caller: CallerDep, filt: UserLogFilterDep, page: PageDep) -> Page[UserLogOut]:
    async with db.read(current=True) as s:
        rows, total = await usage_query.page_logs(s, filt.for_user(caller.user_id), page.page, page.per_page)
    return page.of([UserLogOut.of(log) for log, _ in rows], total)


@router.get("/usage/summary", summary="My usage by UTC day and by model")
async def usage_summary(db: DbDep, caller: CallerDep, filt: UserLogFilterDep) -> SummaryOut:
    async with db.read(current=True) as s:
        return await summary(s, filt.for_user(caller.user_id))


@router.get("/usage/dashboard", summary="My usage over time and by model")
async def usage_dashboard(
    db: DbDep, caller: CallerDep, filt: UserLogFilterDep, bucket: BucketQuery = "auto", top: TopQuery = 10
) -> DashboardOut:
    return await dashboard(db, filt.for_user(caller.user_id), bucket, top, operator=False)
