"""The console's storage on SQLite and PostgreSQL alike: dashboard aggregates that add up,
sessions and failed sign-in counters, run-time setting overrides, passwords; and the colours of
the stylesheet keep their contrast."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.accounts import passwords
from aitre.billing import usage_stats
from aitre.billing.usage_query import LogFilter, totals
from aitre.config import Settings
from aitre.console import sessions
from aitre.runtime_settings import RuntimeSettings, SettingError, save
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.store.models import Channel, ConsoleSession, UsageLog, User
from tests.support.pg import fresh_database

DAY = 86_400_000
T0 = 1_750_000_000_000 // DAY * DAY  # a day's start


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async def open_(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        engine = make_engine(url)
        try:
            await upgrade_to_head(engine)
            yield make_sessionmaker(engine)
        finally:
            await engine.dispose()

    if request.param == "sqlite":
        async for made in open_(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"):
            yield made
    else:
        async with fresh_database() as url:
            async for made in open_(url):
                yield made


async def test_dashboard_adds_up(db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as s, s.begin():
        users = [User(username=f"u{i}", quota=0) for i in range(3)]
        s.add_all([*users, Channel(name="one", type="openai"), Channel(name="two", type="openai")])
        await s.flush()
        rows = []
        for i in range(60):
            rows.append(
                UsageLog(
                    created_at=T0 + (i % 3) * DAY + i * 1000,
                    request_id=f"r{i}",
                    user_id=users[i % 3].id,
                    channel_id=1 + i % 2 if i % 10 else None,
                    model=("a", "b", "c", "d")[i % 4],
                    prompt_tokens=10,
                    completion_tokens=i,
                    status_code=200 if i % 5 else 502,
                    latency_ms=100.0 + i,
                    ttfb_ms=0.0 if i % 2 else 20.0,
                    quota=i * 7,
                )
            )
        s.add_all(rows)
    filt = LogFilter(since=T0, until=T0 + 3 * DAY)
    dash = await usage_stats.dashboard(db, filt, DAY, operator=True, top=3)
    async with db() as s:
        whole = await totals(s, filt)
    assert [p.key for p in dash.series] == [T0, T0 + DAY, T0 + 2 * DAY]
    for part in (dash.series, dash.by_channel, dash.by_user):  # every slice is there: they add up
        assert sum(p.requests for p in part) == whole.requests == 60
        assert sum(p.quota for p in part) == whole.quota == sum(i * 7 for i in range(60))
        assert sum(p.errors for p in part) == whole.errors == 12
    assert len(dash.by_model) == 3  # the top 3 of 4, by cost
    assert [p.label for p in dash.by_model] == ["d", "c", "b"]
    assert {p.label for p in dash.by_channel} == {"one", "two", "(none)"}
    assert {p.label for p in dash.by_user} == {"u0", "u1", "u2"}
    first = dash.series[0]  # i % 3 == 0: i = 0, 3, ..., 57
    members = list(range(0, 60, 3))
    assert first.latency_ms == round(sum(100.0 + i for i in members) / len(members), 1)
    assert first.ttfb_ms == 20.0  # the mean of those that got a first byte
    mine = await usage_stats.dashboard(db, LogFilter(user_id=users[0].id), DAY, operator=False)
    assert mine.by_channel == [] and mine.by_user == [] and sum(p.requests for p in mine.series) == 20


async def test_sessions_and_failures(db: async_sessionmaker[AsyncSession]) -> None:
    settings = Settings(console_idle_minutes=30)
    async with db() as s, s.begin():
        user = User(username="who", quota=0)
        s.add(user)
    async with db() as s:
        token, row = await sessions.create(s, settings, user.id, None, "10.0.0.1", "x" * 1000)
        await s.commit()
        assert len(row.user_agent) == sessions.MAX_USER_AGENT and row.id != token
        found = await sessions.find(s, settings, token)
        assert found is not None and found.user.id == user.id and found.token is None
        assert await sessions.find(s, settings, token + "x") is None
        assert await sessions.find(s, settings, "y" * 500) is None
        scope = sessions.user_scope(user.id)
        for _ in range(3):
            await sessions.record_failure(s, [scope, sessions.ip_scope("10.0.0.1")], 60_000)
        assert await sessions.blocked_for(s, scope, 3, 60_000) > 0
        assert await sessions.blocked_for(s, scope, 4, 60_000) == 0
        await sessions.clear(s, scope)
        await s.commit()
        assert await sessions.blocked_for(s, scope, 1, 60_000) == 0
        # a password change signs out every session but the one that made it
        other, _ = await sessions.create(s, settings, user.id, None, "", "")
        await s.commit()
    async with db() as s, s.begin():
        who = await s.get(User, user.id)
        assert who is not None
        await passwords.set_password(s, who, "a good password", keep_session=sessions.session_id(token))
    async with db() as s:
        assert await sessions.find(s, settings, token) is not None
        assert await sessions.find(s, settings, other) is None
        who = await s.get(User, user.id)
        assert who is not None and await passwords.verify(who.password_hash, "a good password")
        assert not await passwords.verify(who.password_hash, "a bad password")
        assert not await passwords.verify("", "anything at all")
        assert await s.get(ConsoleSession, sessions.session_id(token)) is not None


async def test_runtime_settings_round_trip(db: async_sessionmaker[AsyncSession]) -> None:
    settings = Settings(retries=2, rehost_images=True)
    runtime = RuntimeSettings(settings, db)
    async with db() as s, s.begin():
        await save(
            s,
            {
                "retries": 5,
                "rehost_images": "false",
                "image_chat_models": "a, b",
                "mj_submit_wait_seconds": 1.5,
            },
        )
    await runtime.load()
    assert (settings.retries, settings.rehost_images, settings.image_chat_models) == (5, False, ["a", "b"])
    assert settings.mj_submit_wait_seconds == 1.5
    assert runtime.overridden == {"retries", "rehost_images", "image_chat_models", "mj_submit_wait_seconds"}
    async with db() as s, s.begin():
        with pytest.raises(SettingError):
            await save(s, {"retries": 3, "retries_typo": 1})
    async with db() as s, s.begin():
        await save(s, {"retries": None})
    await runtime.load()
    assert settings.retries == 2 and "retries" not in runtime.overridden


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_stylesheet_colours_keep_their_contrast() -> None:
    css = (Path(__file__).resolve().parents[2] / "src/aitre/console/static/console.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+): (#[0-9a-f]{6})", css))
    pairs = [
        ("fg", "bg"), ("muted", "bg"), ("muted", "panel"), ("primary", "bg"), ("primary-fg", "primary"),
        ("ok", "ok-bg"), ("bad", "bad-bg"), ("warn", "warn-bg"), ("fg", "panel"), ("primary", "panel"),
    ]  # fmt: skip
    for fg, bg in pairs:
        assert contrast(colours[fg], colours[bg]) >= 4.5, (fg, bg, contrast(colours[fg], colours[bg]))
