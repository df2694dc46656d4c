"""The books' writer: it writes on its interval, and at once when many rows wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from aitre.billing import books as books_module
from aitre.billing.books import Books
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.store.models import now_ms


def _row(i: int) -> dict[str, object]:
    return {
        "created_at": now_ms(),
        "request_id": f"req_test_{i:06d}",
        "user_id": 1,
        "token_id": 1,
        "channel_id": 1,
        "endpoint": "chat.completions",
        "model": "m",
        "upstream_model": "m",
        "stream": False,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "usage_estimated": False,
        "status_code": 200,
        "error": "",
        "latency_ms": 1.0,
        "ttfb_ms": 0.0,
        "client_ip": "127.0.0.1",
        "quota": 1,
        "attempts": [],
    }


async def test_a_full_batch_is_written_before_the_interval(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine)
    books = Books(make_sessionmaker(engine), tmp_path / "journal", flush_seconds=3600)
    books.start()
    try:

        async def written() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT COUNT(*) FROM usage_logs"))).scalar_one())

        for i in range(books_module._FLUSH_ROWS - 1):
            books.usage(_row(i))
        await asyncio.sleep(0.3)
        assert await written() == 0  # below the batch size: waits for the interval
        books.usage(_row(books_module._FLUSH_ROWS))
        for _ in range(50):
            if await written() == books_module._FLUSH_ROWS:
                break
            await asyncio.sleep(0.1)
        assert await written() == books_module._FLUSH_ROWS
    finally:
        await books.stop()
        await engine.dispose()
