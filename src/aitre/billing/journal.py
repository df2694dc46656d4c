"""An append-only journal of ledger operations, so a crash between "money moved in memory" and
"money moved in the database" loses nothing.

Every operation is appended (one JSON line, one `write(2)` on an O_APPEND descriptor) before the
request goes on. The kernel keeps the bytes even if the process is SIGKILLed the next moment;
only a crash of the machine itself can lose the last unsynced writes (set
`AITRE_LEDGER_FSYNC=true` to fsync each flush). The database is brought up to date in batches;
a segment is deleted once everything in it is committed. On start, leftover segments are replayed
(idempotently: ledger rows are unique per (hold, kind)).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class Journal:
    def __init__(self, folder: Path, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        folder.mkdir(parents=True, exist_ok=True)
        self._seq = max((self._number(p) for p in self.segments()), default=0)
        self._fd = -1
        self._path: Path | None = None
        self._buffer: list[bytes] = []
        self._scheduled = False
        self._open_new()

    @staticmethod
    def _number(path: Path) -> int:
        return int(path.stem.split("-")[-1])

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("ledger-*.jsonl"), key=self._number)

    def _open_new(self) -> None:
        self._seq += 1
        self._path = self.folder / f"ledger-{self._seq:012d}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, op: dict[str, Any]) -> None:
        """Write now (with anything buffered before it, in order)."""
        self._buffer.append(orjson.dumps(op) + b"\n")
        self.flush()

    def add(self, op: dict[str, Any]) -> None:
        """Buffer only: the caller calls `flush()` before it moves on."""
        self._buffer.append(orjson.dumps(op) + b"\n")

    def append_soon(self, op: dict[str, Any]) -> None:
        """Write at the end of this event-loop turn, together with the turn's other appends:
        one write(2) for many operations (e.g. reservations: nothing has been answered yet)."""
        self._buffer.append(orjson.dumps(op) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._buffer and self._fd >= 0:
            data = b"".join(self._buffer)
            self._buffer.clear()
            os.write(self._fd, data)

    def rotate(self) -> list[Path]:
        """Start a new segment; return the closed ones (to delete once committed)."""
        self.flush()
        if self.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._open_new()
        return [p for p in self.segments() if p != self._path]

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def read_segments(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The operations in `paths`, in order; a torn last line (crash mid-write) is skipped."""
    for path in paths:
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                op = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(op, dict):
                yield op


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
