"""Batch inserts without per-row ORM or SQL-expression work: one prepared statement and a list
of tuples handed straight to the driver's `executemany`.

The ledger and the usage log write thousands of rows a second under load; SQLAlchemy's per-row
parameter processing (in the event loop, between requests) cost more than the relay itself.
JSON columns must be given as already-encoded strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


def insert_sql(dialect_paramstyle: str, table: str, columns: Sequence[str]) -> str:
    if dialect_paramstyle in ("numeric_dollar", "format", "pyformat"):
        marks = (
            [f"${i}" for i in range(1, len(columns) + 1)]
            if dialect_paramstyle == "numeric_dollar"
            else ["%s"] * len(columns)
        )
    else:
        marks = ["?"] * len(columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)})"


async def insert_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    sql = insert_sql(conn.dialect.paramstyle, table, columns)
    await conn.exec_driver_sql(sql, list(rows))
