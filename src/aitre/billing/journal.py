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
import contextlib
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
        self._seq = max((_number(p) for p in self.segments()), default=0)
        self._fd = -1
        self._path: Path | None = None
        self._buffer: list[bytes] = []
        self._scheduled = False
        self._closed = False
        self._open_new()

    def segments(self) -> list[Path]:
        return segments(self.folder)

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
        """Write what is buffered. A failed or short write (disk full, I/O error) raises and
        keeps the bytes not written, in order, for the next flush: nothing is dropped."""
        self._scheduled = False
        if not self._buffer:
            return
        if self._fd < 0:
            if self._closed:
                return
            self._open_new()  # the last rotation could not open a segment: try again
        data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer.clear()
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:] if written else data)
        finally:
            if written < len(data):
                self._buffer.append(data[written:])

    def rotate(self) -> list[Path]:
        """Start a new segment; return the closed ones (to delete once committed)."""
        self.flush()
        if self._fd >= 0:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        self._open_new()
        return [p for p in self.segments() if p != self._path]

    def close(self) -> None:
        self._closed = True
        try:
            self.flush()
        finally:
            if self._fd >= 0:
                if self.fsync:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


def _number(path: Path) -> int:
    return int(path.stem.split("-")[-1])


def segments(folder: Path) -> list[Path]:
    """A journal folder's segments, oldest first."""
    return sorted(folder.glob("ledger-*.jsonl"), key=_number)


def read_segments(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The operations in `paths`, in order; a torn last line (crash mid-write) is skipped."""
    for path in paths:
        yield from parse_segment(path.read_bytes())


def parse_segment(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            op = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(op, dict):
            yield op


def folders(root: Path) -> list[Path]:
    """The journal folders under `root` (one per process that journaled there)."""
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def remove_folder(folder: Path) -> None:
    """Remove a journal folder if it is empty."""
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
