"""Apply Alembic migrations (on `aitre serve` and on every CLI command that touches the database).

Alembic itself is only imported when the database is behind: the newest revision is read from
the migration files' text and compared with the database's `alembic_version`, so an up-to-date
database costs one query, not Alembic's import time (and memory in a long-running server).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_REV = re.compile(r"^revision(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)


def alembic_config(url: str = "") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "aitre.store:migrations")
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@cache
def head_revision() -> str:
    """The newest revision: the one no other revision names as its parent."""
    revisions, parents = set(), set()
    for entry in resources.files("aitre.store.migrations.versions").iterdir():
        if entry.name.endswith(".py") and not entry.name.startswith("__"):
            source = entry.read_text()
            if m := _REV.search(source):
                revisions.add(m.group(1))
            if m := _DOWN.search(source):
                parents.add(m.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {sorted(heads)}")
    return heads.pop()


def _upgrade(conn: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return str(value) if value is not None else None
    except DBAPIError:  # no such table yet: an empty database
        return None


# Instances that start together on one PostgreSQL database take turns: the first migrates (DDL
# is transactional there), the others find the schema current once they hold the lock.
SCHEMA_LOCK = 0x61697472  # "aitr"


async def lock_schema(conn: AsyncConnection) -> None:
    """On PostgreSQL, hold the schema lock until the transaction ends (SQLite serialises writers
    by itself)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})


async def upgrade_to_head(engine: AsyncEngine) -> None:
    if await current_revision(engine) == head_revision():
        return
    async with engine.begin() as conn:
        await lock_schema(conn)
        await conn.run_sync(_upgrade)
