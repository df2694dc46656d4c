"""The media store: files the gateway keeps (generated images, finished tasks' pictures and videos)
and serves at `/media/<name>`.

`MediaStore` is the interface; `LocalMediaStore`, a folder (`<data_dir>/media`), is the default
backend; `s3.S3MediaStore` keeps the files in a bucket shared by every instance
(`AITRE_MEDIA_BACKEND=s3`; `open_media_store` picks one). Names are 128-bit random ids plus the file's
extension, so a link is a capability (like OpenAI's signed URLs) and needs no key; the upstream's
own links expire, ours do not, until retention removes them.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from aitre.media.kinds import content_type, sniff

if TYPE_CHECKING:
    from aitre.config import Settings

NAME = re.compile(r"^([A-Za-z0-9_-]{22})\.([a-z0-9]{2,5})$")
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class StoredMedia:
    name: str
    url: str
    size: int
    content_type: str


@dataclass(frozen=True, slots=True)
class MediaInfo:
    name: str
    size: int
    content_type: str
    modified: float  # epoch seconds
    etag: str = ""  # quoted, as in an ETag header; empty when the backend gives none


class MediaStore(Protocol):
    def url(self, name: str) -> str:
        """The public link of a stored file."""
        ...

    async def save(self, data: bytes, ext: str | None = None) -> StoredMedia:
        """Keep `data` under a new unguessable name (`ext`: sniffed from the bytes when None)."""
        ...

    async def save_file(self, path: Path, ext: str | None = None) -> StoredMedia:
        """Keep the file at `path` (taken: it is moved or removed) under a new name."""
        ...

    async def stat(self, name: str) -> MediaInfo | None:
        """Size and type of a stored file; None for anything that is not one of ours."""
        ...

    async def open(self, name: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes] | None:
        """The bytes `start` to `end` (inclusive; None: to the end) of a stored file, in chunks;
        None when there is no such file."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove a stored file; whether it was there."""
        ...

    async def sweep(self, older_than_s: float) -> int:
        """Retention: remove files older than `older_than_s`; returns how many."""
        ...

    def locate(self, name: str) -> Path | None:
        """A local file behind the name, when the backend has one (served with sendfile);
        None otherwise (then `open` serves it)."""
        ...

    async def presigned(self, name: str) -> str | None:
        """A link to send the client to instead of serving the bytes (a bucket's presigned URL,
        when configured); None: serve them."""
        ...

    async def close(self) -> None:
        """Let go of connections (at shutdown)."""
        ...


def new_name(ext: str) -> str:
    """A new unguessable name with the extension `ext`."""
    return f"{secrets.token_urlsafe(16)}.{ext}"


async def open_media_store(settings: Settings) -> MediaStore:
    """The configured backend, ready to use (a bucket is checked before the gateway serves)."""
    if settings.media_backend == "s3":
        from aitre.media.s3 import S3MediaStore, S3Settings  # botocore: only when chosen

        store = S3MediaStore(
            S3Settings(
                bucket=settings.media_s3_bucket,
                endpoint=settings.media_s3_endpoint,
                region=settings.media_s3_region,
                access_key=settings.media_s3_access_key,
                secret_key=settings.media_s3_secret_key,
                prefix=settings.media_s3_prefix,
                addressing_style=settings.media_s3_addressing_style,
                redirect=settings.media_s3_redirect,
                presign_seconds=settings.media_s3_presign_seconds,
                public_endpoint=settings.media_s3_public_endpoint,
            ),
            settings.resolved_public_url(),
        )
        await store.start()
        return store
    return LocalMediaStore(settings.resolved_media_dir(), settings.resolved_public_url())


class LocalMediaStore:
    """Files under `root`, two levels of folders by the name's first characters."""

    def __init__(self, root: Path, public_base: str) -> None:
        self.root = root
        self.public_base = public_base.rstrip("/")

    def _path(self, media_id: str, ext: str) -> Path:
        return self.root / media_id[:2] / media_id[2:4] / f"{media_id}.{ext}"

    def url(self, name: str) -> str:
        return f"{self.public_base}/media/{name}"

    def _new(self, ext: str) -> tuple[str, Path]:
        name = new_name(ext)
        return name, self._path(name.split(".", 1)[0], ext)

    def _stored(self, name: str, size: int, ext: str) -> StoredMedia:
        return StoredMedia(name, self.url(name), size, content_type(ext))

    async def save(self, data: bytes, ext: str | None = None) -> StoredMedia:
        ext = ext or sniff(data)
        name, path = self._new(ext)
        await asyncio.to_thread(_write_atomic, path, data)
        return self._stored(name, len(data), ext)

    async def save_file(self, path: Path, ext: str | None = None) -> StoredMedia:
        if ext is None:
            with path.open("rb") as fh:
                ext = sniff(fh.read(16))
        name, dest = self._new(ext)
        size = await asyncio.to_thread(_move, path, dest)
        return self._stored(name, size, ext)

    def locate(self, name: str) -> Path | None:
        match = NAME.match(name)
        if match is None:
            return None
        path = self._path(match.group(1), match.group(2))
        return path if path.is_file() else None

    async def stat(self, name: str) -> MediaInfo | None:
        path = self.locate(name)
        if path is None:
            return None
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        return MediaInfo(name, st.st_size, content_type(path.suffix.lstrip(".")), st.st_mtime, etag)

    async def open(self, name: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes] | None:
        path = self.locate(name)
        if path is None:
            return None
        try:
            fh: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            return None
        return _chunks(fh, start, end)

    async def presigned(self, name: str) -> str | None:
        return None

    async def close(self) -> None:
        return None

    async def delete(self, name: str) -> bool:
        path = self.locate(name)
        if path is None:
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def sweep(self, older_than_s: float) -> int:
        return await asyncio.to_thread(self.purge_older_than, older_than_s)

    def purge_older_than(self, seconds: float) -> int:
        """Delete files older than `seconds`; returns how many. Blocking: runs in a thread."""
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


async def _chunks(fh: BinaryIO, start: int, end: int | None) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(fh.seek, start)
        left = None if end is None else max(0, end - start + 1)
        while left is None or left > 0:
            want = _CHUNK if left is None else min(_CHUNK, left)
            chunk = await asyncio.to_thread(fh.read, want)
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _move(src: Path, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    shutil.move(src, tmp)  # a rename on the same file system, else a copy and a removal
    os.replace(tmp, dest)
    return dest.stat().st_size
