"""Usage-log rows leave the request path: handed to the books (`books.py`), which journal them
and write them in batches with the ledger."""

from __future__ import annotations

from typing import Any

from aitre.billing.books import Books
from aitre.store.models import now_ms


class UsageRecorder:
    def __init__(self, books: Books) -> None:
        self._books = books

    def record(self, row: dict[str, Any]) -> None:
        """Log one request (the dict becomes the books'; `created_at` defaults to now)."""
        if "created_at" not in row:
            row["created_at"] = now_ms()
        self._books.usage(row)
