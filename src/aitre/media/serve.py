"""The `Range` header of a media request, read for files streamed from a store without local
files (the S3 backend): single byte ranges (`bytes=a-b`, `a-`, `-n`) as video players and
download tools ask. `api/media.py` answers the requests (local files: Starlette's FileResponse).
"""

from __future__ import annotations

from typing import Literal


def byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The (first, last) bytes one `Range` header asks for; None: the whole file (no header, or
    one we do not honour, like several ranges: a 200 is always a valid answer); False: a range
    that lies past the end (416)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:  # the last n bytes
            n = int(last)
            if n <= 0:
                return False
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return False
    if end < start:
        return None
    return start, min(end, size - 1)
