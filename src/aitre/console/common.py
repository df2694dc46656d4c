"""Helpers the page modules share: paging and filters from the query string, chart data."""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aitre.accounts.repo import MAX_INT32
from aitre.api.admin.summary import DashboardOut
from aitre.api.deps import MAX_PAGE, PageParams
from aitre.errors import bad_request

RANGES = {"24h": "-24h", "7d": "-7d", "30d": "-30d", "90d": "-90d"}


def page_of(query: Mapping[str, str], per_page: int = 50) -> PageParams:
    page = positive(query.get("page"), "page", MAX_PAGE) or 1
    size = positive(query.get("per_page"), "per_page", 500) or per_page
    return PageParams(page, size)


def positive(text: str | None, name: str, most: int = MAX_INT32) -> int | None:
    """A whole number from 1 to `most` in the query or a form; None when blank."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise bad_request(f"{name} must be a whole number from 1 to {most}", param=name)
    return int(value)


def keep(query: Mapping[str, str], *names: str) -> str:
    """The query string of the named, non-blank filters (for paging links)."""
    return urlencode({n: query[n] for n in names if query.get(n, "").strip()})


def chart(dash: DashboardOut, per_usd: int) -> dict[str, Any]:
    """The dashboard's series as the charts draw them: x in unix seconds."""
    xs = [int(p.key or 0) // 1000 for p in dash.series]
    s = dash.series

    def line(label: str, values: list[Any], unit: str = "") -> dict[str, Any]:
        return {"label": label, "values": values, "unit": unit}

    cost = [float(Decimal(p.quota) / per_usd) for p in s]
    # The whole range chosen, not only the buckets with requests: a quiet week looks quiet.
    hi = (dash.until or int(time.time() * 1000)) // 1000
    lo = dash.since // 1000 if dash.since is not None else (xs[0] if xs else hi - 86400)
    span = [lo, hi]
    return {
        "requests": {
            "x": xs,
            "range": span,
            "series": [line("requests", [p.requests for p in s]), line("errors", [p.errors for p in s])],
        },
        "tokens": {
            "x": xs,
            "range": span,
            "series": [
                line("prompt", [p.prompt_tokens for p in s]),
                line("completion", [p.completion_tokens for p in s]),
            ],
        },
        "cost": {"x": xs, "range": span, "series": [line("cost", cost, "$")]},
        "latency": {
            "x": xs,
            "range": span,
            "series": [
                line("latency (mean)", [p.latency_ms for p in s], "ms"),
                line("time to first byte (mean)", [p.ttfb_ms for p in s], "ms"),
            ],
        },
    }
