"""Alembic environment. Runs on a connection handed in by `aitre.store.migrate`, or, for the
`alembic` CLI used by developers, on the URL from aitre's settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from aitre.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online_from_settings() -> None:
    from aitre.config import Settings
    from aitre.store.db import make_engine

    url = context.config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url()
    engine = make_engine(url)

    async def go() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(go())


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    _run_online_from_settings()
