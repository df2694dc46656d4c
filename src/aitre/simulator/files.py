"""Generated files (images, videos) that the simulator hands out as URLs, kept in a bounded LRU: like
OpenAI's and BFL's signed links, they expire, here when newer files push them out."""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass, field

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
}


@dataclass(slots=True)
class FileStore:
    max_files: int = 256
    max_bytes: int = 256 * 1024 * 1024
    _files: collections.OrderedDict[str, bytes] = field(default_factory=collections.OrderedDict)
    _size: int = 0
    # Files are saved from worker threads as well as from the event loop.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def save(self, data: bytes, ext: str) -> str:
        """Store `data`; the returned name (`<random>.<ext>`) is what `/files/{name}` serves."""
        name = f"{secrets.token_hex(16)}.{ext}"
        with self._lock:
            self._files[name] = data
            self._size += len(data)
            while self._files and (len(self._files) > self.max_files or self._size > self.max_bytes):
                _, old = self._files.popitem(last=False)
                self._size -= len(old)
        return name

    def get(self, name: str) -> bytes | None:
        with self._lock:
            data = self._files.get(name)
            if data is not None:
                self._files.move_to_end(name)
            return data

    def __len__(self) -> int:
        return len(self._files)


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")
