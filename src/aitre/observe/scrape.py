"""`GET /metrics` (who may scrape it: `guard.py`), the gauges read from the database at scrape
time, and the gauges each process samples for itself."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import text
from starlette.requests import Request

from aitre.api.common import app_state, client_ip, header
from aitre.errors import ApiError
from aitre.relay.respond import BodyResponse
from aitre.tasks.protocol import TERMINAL

if TYPE_CHECKING:
    from aitre.state import AppState

log = logging.getLogger(__name__)

_DB_SECONDS = 2.0  # a scrape waits this long for the database, then goes without its gauges


async def metrics(request: Request) -> BodyResponse:
    state = app_state(request)
    guard = state.scrape_guard
    if not guard.enabled:
        raise ApiError(404, f"Unknown route: {request.method} {request.url.path}", code="not_found")
    guard.check(client_ip(request), header(request, b"authorization"))
    body = await state.metrics.render(await database_gauges(state))
    return BodyResponse(body, 200, CONTENT_TYPE_LATEST)


_OPEN_TASKS = text(
    "SELECT kind, status, COUNT(*) FROM tasks WHERE status NOT IN ({}) GROUP BY kind, status".format(
        ", ".join(f"'{s}'" for s in sorted(TERMINAL))
    )
)
_DUE_DELIVERIES = text("SELECT COUNT(*) FROM task_deliveries WHERE next_at IS NOT NULL")


async def database_gauges(state: AppState) -> list[Metric]:
    """What only the database knows, for all processes at once: tasks not ended (the queue),
    notifyHook calls waiting. Both read through partial or status indexes."""
    up = GaugeMetricFamily("aitre_scrape_database_up", "Whether the database answered this scrape.")
    try:
        async with asyncio.timeout(_DB_SECONDS), state.sessions() as session:
            rows = (await session.execute(_OPEN_TASKS)).all()
            due = int(await session.scalar(_DUE_DELIVERIES) or 0)
    except Exception as exc:
        log.warning("metrics: the database did not answer (%s: %s)", type(exc).__name__, exc)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    tasks = GaugeMetricFamily(
        "aitre_tasks_open",
        "Tasks not ended (queued, submitting, running, waiting), by kind and status.",
        labels=["kind", "status"],
    )
    for kind, status, count in rows:
        tasks.add_metric([str(kind), str(status)], int(count))
    notify = GaugeMetricFamily("aitre_notify_pending", "notifyHook calls waiting to be made.")
    notify.add_metric([], due)
    return [up, tasks, notify]


def sample_gauges(state: AppState) -> None:
    """This process's own gauges (`Metrics.gauges`): channel breakers and in-flight counts, the
    books' backlog."""
    health = state.health
    state.metrics.gauges(
        ((ch.id, health.breaker(ch.id), health.inflight(ch.id)) for ch in state.catalog.router.channels),
        state.books.pending(),
    )
