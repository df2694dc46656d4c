"""Reading the usage log: filters, pages, a streamed export, and summaries by day and by model.

Plain SQLAlchemy Core expressions that SQLite and PostgreSQL both run; shared by the admin API,
the user API and the CLI.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.store.models import UsageLog, User

DAY_MS = 86_400_000
_RELATIVE = re.compile(r"^([+-])(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
_STATUS = re.compile(r"^([1-5])xx$")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
GroupBy = Literal["day", "model"]


class QueryError(ValueError):
    status = 400
    code = "invalid_filter"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_time(value: str | int, *, now_ms: int | None = None, param: str | None = None) -> int:
    """Milliseconds since the epoch from ms (`1735689600000`), an ISO date or time (`2025-01-01`,
    `2025-01-01T12:00:00+02:00`; no zone = UTC) or an offset from now (`-7d`, `+30d`, `+12h`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = _RELATIVE.match(text)
    if match:
        sign, amount, unit = match.groups()
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        delta = int(amount) * _UNIT_MS[unit]
        return now + delta if sign == "+" else now - delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"not a time: {text!r} (use ms since the epoch, an ISO date like 2025-01-31, or -7d / +30d)",
            param,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which usage-log rows: every field that is set must match. `status` is a code (`429`), a
    class (`5xx`), `ok` (200) or `error` (anything else). `since` inclusive, `until` exclusive."""

    user_id: int | None = None
    token_id: int | None = None
    model: str | None = None
    channel_id: int | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        if self.status is not None:
            _status_condition(self.status)  # validate early

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        for column, value in (
            (UsageLog.user_id, self.user_id),
            (UsageLog.token_id, self.token_id),
            (UsageLog.model, self.model),
            (UsageLog.channel_id, self.channel_id),
        ):
            if value is not None:
                out.append(column == value)
        if self.status is not None:
            out.append(_status_condition(self.status))
        if self.since is not None:
            out.append(UsageLog.created_at >= self.since)
        if self.until is not None:
            out.append(UsageLog.created_at < self.until)
        return out

    def for_user(self, user_id: int) -> LogFilter:
        return replace(self, user_id=user_id)


def _status_condition(status: str) -> ColumnElement[bool]:
    text = status.strip().lower()
    if text == "ok":
        return UsageLog.status_code == 200
    if text == "error":
        return UsageLog.status_code != 200
    if text.isdigit() and 100 <= int(text) <= 599:
        return UsageLog.status_code == int(text)
    match = _STATUS.match(text)
    if match:
        low = int(match.group(1)) * 100
        return UsageLog.status_code.between(low, low + 99)
    raise QueryError(
        f"status must be a code like 429, a class like 5xx, ok or error; not {status!r}", "status"
    )


LogRow = tuple[UsageLog, str | None]  # a row and the name of its user


async def _fetch(
    session: AsyncSession,
    filt: LogFilter,
    *,
    order_by: ColumnElement[Any],
    limit: int,
    offset: int = 0,
    after_id: int | None = None,
) -> list[LogRow]:
    conditions = filt.conditions() + ([UsageLog.id > after_id] if after_id is not None else [])
    stmt = (
        select(UsageLog, User.username)
        .outerjoin(User, User.id == UsageLog.user_id)
        .where(*conditions)
        .order_by(order_by)
        .offset(offset)
        .limit(limit)
    )
    return [(log, name) for log, name in (await session.execute(stmt)).all()]


async def count_logs(session: AsyncSession, filt: LogFilter) -> int:
    stmt = select(func.count()).select_from(UsageLog).where(*filt.conditions())
    return int(await session.scalar(stmt) or 0)


async def page_logs(
    session: AsyncSession, filt: LogFilter, page: int = 1, per_page: int = 50
) -> tuple[list[LogRow], int]:
    """One page of matching rows, newest first, with the user names, and the total count."""
    total = await count_logs(session, filt)
    rows = await _fetch(
        session, filt, order_by=UsageLog.id.desc(), offset=(page - 1) * per_page, limit=per_page
    )
    return rows, total


async def iter_logs(session: AsyncSession, filt: LogFilter, batch: int = 1000) -> AsyncIterator[list[LogRow]]:
    """Every matching row, oldest first, in batches (keyset paging: no OFFSET, steady memory)."""
    last = 0
    while True:
        rows = await _fetch(session, filt, order_by=UsageLog.id.asc(), limit=batch, after_id=last)
        if not rows:
            return
        yield rows
        last = rows[-1][0].id
        if len(rows) < batch:
            return


# --- CSV --------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "id",
    "time",
    "created_at_ms",
    "request_id",
    "user_id",
    "username",
    "token_id",
    "channel_id",
    "endpoint",
    "model",
    "upstream_model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "usage_estimated",
    "status_code",
    "error",
    "latency_ms",
    "ttfb_ms",
    "client_ip",
    "quota",
    "attempts",
)


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection"); model
# names, user names and upstream error texts are chosen by clients and upstreams.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Text cells that a spreadsheet would read as a formula, made inert with a leading `'`."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _csv_values(log: UsageLog, username: str | None) -> list[Any]:
    return [csv_safe(v) for v in _raw_values(log, username)]


def _raw_values(log: UsageLog, username: str | None) -> list[Any]:
    return [
        log.id,
        iso_time(log.created_at),
        log.created_at,
        log.request_id,
        log.user_id,
        username or "",
        log.token_id,
        log.channel_id,
        log.endpoint,
        log.model,
        log.upstream_model,
        int(log.stream),
        log.prompt_tokens,
        log.completion_tokens,
        log.prompt_tokens + log.completion_tokens,
        int(log.usage_estimated),
        log.status_code,
        log.error,
        round(log.latency_ms, 1),
        round(log.ttfb_ms, 1),
        log.client_ip,
        log.quota,
        orjson.dumps(log.attempts or []).decode(),
    ]


def csv_text(rows: Iterable[LogRow], header: bool = False) -> str:
    """Rows as CSV text (RFC 4180 quoting, `\\r\\n` line ends), optionally after the header."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_values(log, name) for log, name in rows)
    return buf.getvalue()


async def csv_chunks(session: AsyncSession, filt: LogFilter, batch: int = 1000) -> AsyncIterator[str]:
    """The whole export, header first, one chunk per batch of rows."""
    yield csv_text((), header=True)
    async for rows in iter_logs(session, filt, batch):
        yield csv_text(rows)


# --- summaries ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SummaryRow:
    key: str  # the day (YYYY-MM-DD, UTC) or the model
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    quota: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _measures() -> list[Any]:
    return [
        func.count(),
        func.coalesce(func.sum(case((UsageLog.status_code != 200, 1), else_=0)), 0),
        func.coalesce(func.sum(UsageLog.prompt_tokens), 0),
        func.coalesce(func.sum(UsageLog.completion_tokens), 0),
        func.coalesce(func.sum(UsageLog.quota), 0),
    ]


def _day(bucket: int) -> str:
    return date.fromordinal(_EPOCH_DAY + bucket).isoformat()


async def summarize(session: AsyncSession, filt: LogFilter, by: GroupBy) -> list[SummaryRow]:
    """Totals per UTC day (oldest first) or per model (most quota first)."""
    key = (UsageLog.created_at // DAY_MS) if by == "day" else UsageLog.model
    stmt = select(key.label("k"), *_measures()).where(*filt.conditions()).group_by(key)
    stmt = stmt.order_by(key) if by == "day" else stmt.order_by(func.sum(UsageLog.quota).desc(), key)
    out = []
    for k, *numbers in (await session.execute(stmt)).all():
        label = _day(int(k)) if by == "day" else str(k)
        out.append(SummaryRow(label, *(int(n) for n in numbers)))
    return out


async def totals(session: AsyncSession, filt: LogFilter) -> SummaryRow:
    row = (await session.execute(select(*_measures()).where(*filt.conditions()))).one()
    return SummaryRow("total", *(int(n) for n in row))
