"""Serving files of the media store: `GET /media/<name>` (public: the names are unguessable) and the
video API's downloads (`/v1/videos/{id}/content`).

- Range: one range is answered 206 with exactly those bytes; several, 206 `multipart/byteranges`
  for a local file (Starlette's `FileResponse`), the whole file (200) for a store that can only
  stream; a range outside the file, 416 with `Content-Range: bytes */<size>`; `If-Range` honoured.
- Caching: every file is immutable (a new file gets a new name), so a strong ETag from its name
  and size; `If-None-Match` → 304; `Cache-Control` as the caller says (a year, public, for
  `/media`).
- A store without local files (S3) may send the client to a presigned URL instead
  (`AITRE_MEDIA_S3_REDIRECT`); else its bytes are streamed from the store.
- Nothing is read whole into memory and nothing blocks the event loop: the file is looked up and
  stat'ed in a worker thread and sent in chunks (by the file response, or the store's `open`).
"""

from __future__ import annotations

import asyncio
import os
from email.utils import formatdate
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from aitre.api.common import app_state, header
from aitre.errors import ApiError
from aitre.media.kinds import content_type
from aitre.media.serve import byte_range
from aitre.media.store import MediaInfo, MediaStore

PUBLIC_CACHE = "public, max-age=31536000, immutable"


def not_found() -> ApiError:
    return ApiError(404, "No such media file.", code="not_found")


def etag(name: str, size: int) -> str:
    return f'"{name.rsplit(".", 1)[0]}-{size:x}"'


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110's weak comparison, as `If-None-Match` asks for."""
    wanted = tag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def _local(store: MediaStore, name: str) -> tuple[Path, os.stat_result] | None:
    """Blocking (a worker thread): the file behind the name and its stat, if it is local."""
    path = store.locate(name)
    if path is None:
        return None
    try:
        return path, path.stat()
    except FileNotFoundError:
        return None


async def serve(
    request: Request, store: MediaStore, name: str, cache_control: str = PUBLIC_CACHE
) -> Response:
    """The stored file `name`, answered as the request asks (Range, If-None-Match, HEAD)."""
    local = await asyncio.to_thread(_local, store, name)
    if local is not None:
        path, st = local
        info = MediaInfo(name, st.st_size, content_type(path.suffix.lstrip(".")), st.st_mtime)
    else:
        found = await store.stat(name)
        if found is None:  # checked before any redirect: a name that is not ours gets our 404
            raise not_found()
        info = found
        redirect = await store.presigned(name)
        if redirect is not None:
            return RedirectResponse(redirect, status_code=302, headers={"cache-control": "no-store"})
    headers = {
        "etag": etag(name, info.size),
        "cache-control": cache_control,
        "last-modified": formatdate(info.modified, usegmt=True),
        "accept-ranges": "bytes",
    }
    asked = header(request, b"if-none-match")
    if asked is not None and _matches(asked, headers["etag"]):
        return Response(status_code=304, headers=headers)
    if local is not None:
        return FileResponse(local[0], media_type=info.content_type, headers=headers, stat_result=local[1])
    return await _streamed(request, store, info, headers)


async def _streamed(
    request: Request, store: MediaStore, info: MediaInfo, headers: dict[str, str]
) -> Response:
    """A file of a store without local files: the whole file, or one range of it."""
    size = info.size
    start, end, status = 0, size - 1, 200
    asked = header(request, b"range")
    if_range = header(request, b"if-range")
    if asked is not None and (if_range is None or if_range == headers["etag"]):
        wanted = byte_range(asked, size)
        if wanted is False:
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        if wanted is not None:  # None: several ranges or a malformed one: the whole file
            start, end = wanted
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1 if size else 0)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=info.content_type)
    chunks = await store.open(info.name, start, end)
    if chunks is None:
        raise not_found()
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=info.content_type)


async def get_media(request: Request) -> Response:
    name = request.path_params["name"]
    return await serve(request, app_state(request).media, name)
