"""A throw-away PostgreSQL database per test run, on the local server (trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

PG_DSN = os.environ.get("AITRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Yield an SQLAlchemy URL to a new, empty database; drop it afterwards."""
    name = f"aitre_t_{uuid.uuid4().hex[:10]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_DSN} is required for this test: {exc}")
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
