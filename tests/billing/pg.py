"""Reading a gateway's PostgreSQL database and Redis balances, and taking the database away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from redis.asyncio import Redis

from tests.support.pg import PG_DSN


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def pg_one(url: str, sql: str, *args: Any) -> Any:
    """The first value of the first row of a query."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def pg_rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def balance_and_ledger(url: str, username: str) -> tuple[int, int]:
    """A user's balance column and the sum of the user's ledger."""
    row = await pg_rows(
        url,
        "SELECT u.quota, CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) AS s FROM users u "
        "LEFT JOIN ledger l ON l.user_id = u.id WHERE u.username = $1 GROUP BY u.quota",
        username,
    )
    return int(row[0]["quota"]), int(row[0]["s"])


@asynccontextmanager
async def allow_connections(url: str, allowed: bool) -> AsyncIterator[None]:
    """While the block runs, the database refuses new connections and has none open (an outage)."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def redis_user_balance(redis_url: str, ns: str, user_id: int) -> int | None:
    redis = Redis.from_url(redis_url)
    try:
        value = await redis.get(f"{ns}:u:{user_id}")
        return None if value is None else int(value)
    finally:
        await redis.aclose()
