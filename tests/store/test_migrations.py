"""Migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from aitre.store.db import make_engine
from aitre.store.migrate import upgrade_to_head
from aitre.store.models import Base
from tests.support.pg import fresh_database


async def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        await upgrade_to_head(engine)
        await upgrade_to_head(engine)  # idempotent
        async with engine.connect() as conn:

            def compare(sync_conn):  # type: ignore[no-untyped-def]
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                tables = set(inspect(sync_conn).get_table_names())
                return tables, compare_metadata(ctx, Base.metadata)

            tables, diff = await conn.run_sync(compare)
    finally:
        await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    return list(diff)


async def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    assert await _diff(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") == []


async def test_postgres_schema_matches_models() -> None:
    async with fresh_database() as url:
        assert await _diff(url) == []


async def test_upgrade_from_0001_keeps_existing_rows(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from aitre.store.migrate import alembic_config

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:

        def to(rev: str):  # type: ignore[no-untyped-def]
            def run(conn):  # type: ignore[no-untyped-def]
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, rev)

            return run

        async with engine.begin() as conn:
            await conn.run_sync(to("0001"))
            await conn.execute(
                text(
                    "INSERT INTO users (username, role, group_name, enabled, created_at) VALUES ('old', 'user', 'default', 1, 1)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO tokens (user_id, name, key_hash, key_hint, enabled, created_at) VALUES (1, 'k', 'h', 'x', 1, 1)"
                )
            )
        async with engine.begin() as conn:
            await conn.run_sync(to("head"))
            user = (await conn.execute(text("SELECT quota, used_quota FROM users"))).one()
            token = (await conn.execute(text("SELECT unlimited, rpm, model_mapping FROM tokens"))).one()
    finally:
        await engine.dispose()
    assert tuple(user) == (0, 0)
    assert token[0] == 1 and token[1] == 0 and token[2] == "{}"


async def test_upgrade_to_0004_gives_open_holds_an_owner_that_gets_recovered(tmp_path: Path) -> None:
    """Reserve rows from before 0004: ended ones are marked ended; open request holds belong to
    `pre-0004`, an instance that never heartbeats (the first live instance refunds them); open
    task holds become durable (no owner)."""
    from alembic import command
    from sqlalchemy import text

    from aitre.store.migrate import alembic_config

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:

        def to(rev: str):  # type: ignore[no-untyped-def]
            def run(conn):  # type: ignore[no-untyped-def]
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, rev)

            return run

        async with engine.begin() as conn:
            await conn.run_sync(to("0003"))
            rows = [
                ("req_done", "reserve", -300),
                ("req_done", "settle", 200),
                ("req_open", "reserve", -300),
                ("task_open", "reserve", -500),
                ("req_charged", "charge", -100),
            ]
            for hold, kind, amount in rows:
                await conn.execute(
                    text(
                        "INSERT INTO ledger (created_at, user_id, token_id, hold_id, kind, amount, token_amount, note) "
                        "VALUES (5, 1, NULL, :h, :k, :a, 0, '')"
                    ),
                    {"h": hold, "k": kind, "a": amount},
                )
        async with engine.begin() as conn:
            await conn.run_sync(to("head"))
            reserves = {
                r[0]: (r[1], r[2])
                for r in await conn.execute(
                    text("SELECT hold_id, owner, ended_at FROM ledger WHERE kind = 'reserve'")
                )
            }
            instances = (
                await conn.execute(text("SELECT id, heartbeat_at, recovered_by FROM instances"))
            ).all()
    finally:
        await engine.dispose()
    assert reserves == {"req_done": (None, 5), "req_open": ("pre-0004", None), "task_open": (None, None)}
    assert [tuple(r) for r in instances] == [("pre-0004", 0, None)]
