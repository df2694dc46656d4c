"""Operator pages: the dashboard, the usage logs (filters, paging, CSV export)."""

from __future__ import annotations

from starlette.responses import Response

from aitre.api.admin import logs as logs_api
from aitre.api.admin import summary as summary_api
from aitre.api.admin.schemas import parse_moment
from aitre.api.deps import domain_errors
from aitre.billing.usage_query import LogFilter
from aitre.console.common import RANGES, chart, keep, page_of, positive
from aitre.console.web import Ctx

LOG_FILTERS = ("user_id", "token_id", "channel_id", "model", "status", "since", "until")


def log_filter(ctx: Ctx, *, operator: bool = True, default_since: str | None = None) -> LogFilter:
    """The filters of the query string, as the API reads them (same checks, same errors)."""
    q = ctx.query
    with domain_errors():
        return LogFilter(
            user_id=positive(q.get("user_id"), "user_id") if operator else None,
            token_id=positive(q.get("token_id"), "token_id"),
            channel_id=positive(q.get("channel_id"), "channel_id") if operator else None,
            model=q.get("model", "").strip()[:128] or None,
            status=q.get("status", "").strip()[:8] or None,
            since=_moment(q.get("since") or default_since, "since"),
            until=_moment(q.get("until"), "until"),
        )


def _moment(value: str | None, param: str) -> int | None:
    return parse_moment(value.strip(), param) if value and value.strip() else None


async def dashboard(ctx: Ctx) -> Response:
    chosen = ctx.query.get("range", "7d")
    if chosen not in RANGES:
        chosen = "7d"
    base = log_filter(ctx, default_since=RANGES[chosen])
    dash = await summary_api.usage_dashboard(ctx.db, base, "auto", 10)
    health = await _health(ctx)
    return ctx.render(
        "admin/dashboard.html",
        title="Dashboard",
        dash=dash,
        charts=chart(dash, ctx.state.settings.quota_per_usd),
        ranges=list(RANGES),
        chosen=chosen,
        totals=_totals(dash),
        health=health,
    )


def _totals(dash: summary_api.DashboardOut) -> dict[str, float]:
    s = dash.series
    requests = sum(p.requests for p in s)
    return {
        "requests": requests,
        "errors": sum(p.errors for p in s),
        "tokens": sum(p.total_tokens for p in s),
        "quota": sum(p.quota for p in s),
        "latency": round(sum(p.latency_ms * p.requests for p in s) / requests, 1) if requests else 0.0,
    }


async def _health(ctx: Ctx) -> list[dict[str, object]]:
    from aitre.api.admin import channel_health

    rows = await channel_health.channel_health(ctx.state, ctx.db)
    return [r.model_dump() for r in rows]


async def logs(ctx: Ctx) -> Response:
    filt = log_filter(ctx)
    page = page_of(ctx.query)
    found = await logs_api.list_logs(ctx.db, filt, page)
    return ctx.render(
        "admin/logs.html",
        title="Usage logs",
        page=found,
        q=ctx.query,
        query=keep(ctx.query, *LOG_FILTERS),
    )


async def logs_csv(ctx: Ctx) -> Response:
    return await logs_api.export_logs(ctx.state, log_filter(ctx))
