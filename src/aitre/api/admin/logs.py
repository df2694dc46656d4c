"""/api/admin/logs and /api/admin/logs.csv: the usage log, filtered, paged or exported whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from aitre.api.admin.schemas import LogOut, Page
from aitre.api.deps import DbDep, LogFilterDep, PageDep, StateDep
from aitre.billing import usage_query
from aitre.billing.usage_query import LogFilter
from aitre.state import AppState

router = APIRouter(tags=["admin: usage"])


@router.get("/logs", summary="Usage logs, newest first")
async def list_logs(db: DbDep, filt: LogFilterDep, page: PageDep) -> Page[LogOut]:
    async with db.read(current=True) as s:
        rows, total = await usage_query.page_logs(s, filt, page.page, page.per_page)
    return page.of([LogOut.row(log, name) for log, name in rows], total)


async def _csv(state: AppState, filt: LogFilter) -> AsyncIterator[str]:
    async with state.sessions() as session:
        async for chunk in usage_query.csv_chunks(session, filt):
            yield chunk


@router.get(
    "/logs.csv",
    summary="Usage logs as CSV, oldest first (streamed; same filters, no paging)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "A header row, then one row per request."}},
)
async def export_logs(state: StateDep, filt: LogFilterDep) -> StreamingResponse:
    await state.accountant.bank.flush()  # this process's pending rows belong in the export
    return StreamingResponse(
        _csv(state, filt),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="aitre-usage.csv"'},
    )
