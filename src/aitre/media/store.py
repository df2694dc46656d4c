"""The media store: generated files kept under `<data_dir>/media`, served at `/media/<name>`.

Names are 128-bit random ids, so a link is a capability (like OpenAI's signed URLs) and needs
no key; the upstream's own links expire, ours do not (until retention removes them).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from aitre.media.kinds import content_type, sniff

_NAME = re.compile(r"^([A-Za-z0-9_-]{22})\.([a-z0-9]{2,5})$")


@dataclass(frozen=True, slots=True)
class StoredMedia:
    name: str
    url: str
    size: int
    content_type: str


class MediaStore:
    def __init__(self, root: Path, public_base: str) -> None:
        self.root = root
        self.public_base = public_base.rstrip("/")

    def _path(self, media_id: str, ext: str) -> Path:
        return self.root / media_id[:2] / media_id[2:4] / f"{media_id}.{ext}"

    async def save(self, data: bytes, ext: str | None = None) -> StoredMedia:
        ext = ext or sniff(data)
        media_id = secrets.token_urlsafe(16)
        path = self._path(media_id, ext)
        await asyncio.to_thread(_write_atomic, path, data)
        name = f"{media_id}.{ext}"
        return StoredMedia(name, f"{self.public_base}/media/{name}", len(data), content_type(ext))

    def locate(self, name: str) -> Path | None:
        """The file behind a public name, or None for anything that is not one of ours."""
        match = _NAME.match(name)
        if match is None:
            return None
        path = self._path(match.group(1), match.group(2))
        return path if path.is_file() else None

    def purge_older_than(self, seconds: float) -> int:
        """Delete files older than `seconds`; returns how many. Runs in a thread."""
        cutoff = time.time() - seconds
        removed = 0
        for path in self.root.glob("*/*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
