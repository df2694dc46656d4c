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
