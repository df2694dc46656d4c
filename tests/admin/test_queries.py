"""The plain query functions behind the admin API and the CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import groups, redeem, repo
from aitre.billing import usage_query
from aitre.billing.usage_query import DAY_MS, LogFilter, parse_time
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.store.models import LedgerEntry, UsageLog, User
from tests.support.pg import fresh_database

DAY0 = parse_time("2025-03-01")


@pytest.fixture(params=["sqlite", "postgres"])
async def session(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncSession]:
    async def run(url: str) -> AsyncIterator[AsyncSession]:
        engine = make_engine(url)
        try:
            await upgrade_to_head(engine)
            async with make_sessionmaker(engine)() as s:
                yield s
        finally:
            await engine.dispose()

    if request.param == "sqlite":
        async for s in run(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"):
            yield s
    else:
        async with fresh_database() as url:
            async for s in run(url):
                yield s


def _log(
    user_id: int, day: int, model: str, status: int = 200, quota: int = 10, **kw: object
) -> dict[str, object]:
    return {
        "created_at": DAY0 + day * DAY_MS + 1000,
        "request_id": f"req_{user_id}_{day}_{model}_{status}",
        "user_id": user_id,
        "token_id": kw.get("token_id", 1),
        "channel_id": None if status != 200 else 1,
        "endpoint": "chat.completions",
        "model": model,
        "upstream_model": model,
        "stream": False,
        "prompt_tokens": 10,
        "completion_tokens": 5 if status == 200 else 0,
        "usage_estimated": False,
        "status_code": status,
        "error": "" if status == 200 else 'refused, "quoted"\nsecond line',
        "latency_ms": 12.5,
        "ttfb_ms": 3.0,
        "client_ip": "127.0.0.1",
        "quota": quota if status == 200 else 0,
        "attempts": [],
    }


async def test_log_filters_pages_csv_and_summaries(session: AsyncSession) -> None:
    async with session.begin():
        alice = await repo.create_user(session, "alice", quota=1000)
        bob = await repo.create_user(session, "bob")
        rows = [
            _log(alice.id, 0, "m1"),
            _log(alice.id, 0, "m2", quota=30),
            _log(alice.id, 1, "m1", token_id=2),
            _log(alice.id, 2, "m1", status=429),
            _log(bob.id, 1, "m2", quota=7),
        ]
        await session.execute(insert(UsageLog), rows)

    mine = LogFilter(user_id=alice.id)
    page, total = await usage_query.page_logs(session, mine, page=1, per_page=3)
    assert total == 4 and len(page) == 3 and page[0][0].status_code == 429 and page[0][1] == "alice"
    rest, _ = await usage_query.page_logs(session, mine, page=2, per_page=3)
    assert len(rest) == 1 and rest[0][0].id < page[-1][0].id
    assert await usage_query.count_logs(session, LogFilter(model="m2")) == 2
    assert await usage_query.count_logs(session, LogFilter(token_id=2)) == 1
    assert await usage_query.count_logs(session, LogFilter(status="4xx")) == 1
    assert await usage_query.count_logs(session, LogFilter(status="ok", channel_id=1)) == 4
    day1 = LogFilter(since=DAY0 + DAY_MS, until=DAY0 + 2 * DAY_MS)
    assert await usage_query.count_logs(session, day1) == 2
    with pytest.raises(ValueError, match="status"):
        LogFilter(status="nope")

    text = "".join([chunk async for chunk in usage_query.csv_chunks(session, LogFilter(), batch=2)])
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(usage_query.CSV_COLUMNS) and len(table) == 6
    assert [int(r[0]) for r in table[1:]] == sorted(int(r[0]) for r in table[1:])
    assert table[4][usage_query.CSV_COLUMNS.index("error")] == 'refused, "quoted"\nsecond line'
    assert table[1][1] == "2025-03-01T00:00:01.000Z"

    days = await usage_query.summarize(session, mine, "day")
    assert [(d.key, d.requests, d.errors, d.quota) for d in days] == [
        ("2025-03-01", 2, 0, 40),
        ("2025-03-02", 1, 0, 10),
        ("2025-03-03", 1, 1, 0),
    ]
    models = await usage_query.summarize(session, LogFilter(), "model")
    assert [(m.key, m.requests, m.quota, m.total_tokens) for m in models] == [
        ("m2", 2, 37, 30),
        ("m1", 3, 20, 40),
    ]
    total_row = await usage_query.totals(session, LogFilter())
    assert (total_row.requests, total_row.errors, total_row.quota) == (5, 1, 57)
    empty = await usage_query.totals(session, LogFilter(since=DAY0 + 100 * DAY_MS))
    assert (empty.requests, empty.quota) == (0, 0)


async def test_accounts_groups_and_redeem_codes(session: AsyncSession) -> None:
    async with session.begin():
        await groups.set_group(session, "vip", "0.5", "half price")
        user = await repo.create_user(session, "carol", group="vip", quota=100)
        with pytest.raises(repo.ConflictError):
            await groups.delete_group(session, "vip")
        with pytest.raises(repo.AccountError, match="no group"):
            await repo.create_user(session, "dave", group="missing")
        found, total = await repo.list_users(session, name="CAR")
        assert total == 1 and found[0].id == user.id
        assert [(g.name, n) for g, n in await groups.list_groups(session)] == [("vip", 1)]

        issued = await redeem.create_codes(session, count=2, quota=50, name="launch")
        await redeem.redeem(session, user, issued[0].code)
        with pytest.raises(redeem.RedeemError) as used:
            await redeem.redeem(session, user, issued[0].code)
        assert used.value.code == "redeem_code_used"
        with pytest.raises(redeem.RedeemError) as unknown:
            await redeem.redeem(session, user, "rc-unknown")
        assert unknown.value.code == "redeem_code_invalid"
        with pytest.raises(repo.ConflictError):
            await redeem.delete_code(session, issued[0].row.id)
        await redeem.delete_code(session, issued[1].row.id)
        listed, count = await redeem.list_codes(session, status="used")
        assert count == 1 and listed[0][1] == "carol"

        key = await repo.create_key(session, user, {"quota": 10, "allowed_ips": ["10.1.2.3"]})
        assert key.token.allowed_ips == ["10.1.2.3/32"] and not key.token.unlimited
        await repo.update_key(session, key.token, {"quota": None, "allowed_ips": []})
        assert key.token.unlimited and key.token.allowed_ips is None

    await session.refresh(user)
    ledger_sum = await session.scalar(
        select(func.sum(LedgerEntry.amount)).where(LedgerEntry.user_id == user.id)
    )
    assert user.quota == ledger_sum == 150
    assert await session.scalar(select(User.group_name).where(User.id == user.id)) == "vip"


def test_parse_time_and_amounts() -> None:
    assert parse_time("1735689600000") == 1735689600000
    assert parse_time("2025-01-01") == 1735689600000
    assert parse_time("2025-01-01T02:00:00+02:00") == 1735689600000
    assert parse_time("+2d", now_ms=0) == 2 * DAY_MS and parse_time("-1h", now_ms=3_600_000) == 0
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon")
    assert repo.parse_amount("$1.5", 500_000) == 750_000
    assert repo.parse_amount("-$1", 500_000) == -500_000
    assert repo.parse_amount("2usd", 500_000) == 1_000_000
    assert repo.parse_amount("1_000", 500_000) == 1000
    with pytest.raises(repo.AccountError):
        repo.parse_amount("lots", 500_000)
    assert groups.parse_multiplier("1.50") == "1.5"
