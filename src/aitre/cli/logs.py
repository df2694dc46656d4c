"""`aitre logs` and `aitre usage`: the usage log, filtered, and its summary by day and model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.repo import find_user
from aitre.billing import usage_query
from aitre.billing.usage_query import LogFilter, LogRow, SummaryRow, iso_time, parse_time
from aitre.channels.repo import find_channel
from aitre.cli.common import JsonOption, console, run_db, table
from aitre.secrets import SecretBox

UserOpt = Annotated[str | None, typer.Option(help="User name or id.")]
KeyOpt = Annotated[int | None, typer.Option("--key", help="Key (token) id.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model as the client sent it.")]
ChannelOpt = Annotated[str | None, typer.Option(help="Channel id or name.")]
StatusOpt = Annotated[str | None, typer.Option(help="A status code (429), a class (5xx), ok or error.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="From (inclusive): ISO date/time (UTC), ms, or relative like -7d.")
]
UntilOpt = Annotated[str | None, typer.Option(help="Before: ISO date/time (UTC), ms, or relative.")]


async def _filter(
    session: AsyncSession,
    user: str | None,
    key: int | None,
    model: str | None,
    channel: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
) -> LogFilter:
    return LogFilter(
        user_id=(await find_user(session, user)).id if user else None,
        token_id=key,
        model=model or None,
        channel_id=(await find_channel(session, channel)).id if channel else None,
        status=status or None,
        since=parse_time(since, param="since") if since else None,
        until=parse_time(until, param="until") if until else None,
    )


async def _write_csv(session: AsyncSession, filt: LogFilter, out: TextIO) -> None:
    async for chunk in usage_query.csv_chunks(session, filt):
        out.write(chunk)


def logs(
    user: UserOpt = None,
    key: KeyOpt = None,
    model: ModelOpt = None,
    channel: ChannelOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    page: Annotated[int, typer.Option(help="Page number, from 1 (newest first).", min=1)] = 1,
    per_page: Annotated[int, typer.Option(help="Rows per page.", min=1, max=500)] = 50,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write every matching row (no paging) to FILE ('-': stdout).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> tuple[list[LogRow], int]:
        filt = await _filter(session, user, key, model, channel, status, since, until)
        if csv is None:
            return await usage_query.page_logs(session, filt, page, per_page)
        if str(csv) == "-":
            await _write_csv(session, filt, sys.stdout)
        else:
            with csv.open("w", newline="", encoding="utf-8") as fh:
                await _write_csv(session, filt, fh)
        return [], await usage_query.count_logs(session, filt)

    rows, total = run_db(work, changes_catalog=False)
    if csv is not None:
        if str(csv) != "-":
            console.print(f"{total} rows written to {csv}")
        return
    table(
        f"usage logs (page {page}, {len(rows)} of {total})",
        [
            "id",
            "time",
            "request id",
            "user",
            "key",
            "model",
            "channel",
            "status",
            "prompt",
            "completion",
            "quota",
            "ms",
        ],
        [
            (
                log.id,
                iso_time(log.created_at),
                log.request_id,
                name or log.user_id,
                log.token_id,
                log.model,
                log.channel_id,
                log.status_code,
                log.prompt_tokens,
                log.completion_tokens,
                log.quota,
                round(log.latency_ms),
            )
            for log, name in rows
        ],
        as_json,
    )


_SUMMARY_COLUMNS = ["requests", "errors", "prompt tokens", "completion tokens", "total tokens", "quota"]


def _numbers(r: SummaryRow) -> tuple[int, ...]:
    return (r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.quota)


def usage(
    user: UserOpt = None,
    key: KeyOpt = None,
    model: ModelOpt = None,
    channel: ChannelOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: Annotated[str | None, typer.Option(help="Only one table: day or model.")] = None,
    as_json: JsonOption = False,
) -> None:
    async def work(
        session: AsyncSession, box: SecretBox
    ) -> tuple[list[SummaryRow], list[SummaryRow], SummaryRow]:
        if by not in (None, "day", "model"):
            raise ValueError("--by must be day or model")
        filt = await _filter(session, user, key, model, channel, status, since, until)
        days = await usage_query.summarize(session, filt, "day") if by != "model" else []
        models = await usage_query.summarize(session, filt, "model") if by != "day" else []
        return days, models, await usage_query.totals(session, filt)

    days, models, total = run_db(work, changes_catalog=False)
    if as_json:
        cols = ["requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "quota"]
        doc = {
            "by_day": [{"day": r.key, **dict(zip(cols, _numbers(r), strict=True))} for r in days],
            "by_model": [{"model": r.key, **dict(zip(cols, _numbers(r), strict=True))} for r in models],
            "total": dict(zip(cols, _numbers(total), strict=True)),
        }
        print(json.dumps(doc))
        return
    if by != "model":
        table("usage by day (UTC)", ["day", *_SUMMARY_COLUMNS], [(r.key, *_numbers(r)) for r in days])
    if by != "day":
        table("usage by model", ["model", *_SUMMARY_COLUMNS], [(r.key, *_numbers(r)) for r in models])
    table("total", _SUMMARY_COLUMNS, [_numbers(total)])
