"""Apply Alembic migrations programmatically (on `aitre serve` and on every CLI command)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(url: str = "") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "aitre.store:migrations")
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _upgrade(conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
