"""Answering `GET /media/<name>` for files that are not on local disk (the S3 backend): a
redirect to a presigned URL when configured, else the bytes streamed from the store, with
single byte ranges (`Range: bytes=a-b`, `a-`, `-n`) as video players and download tools ask.

Local files are served by `api/media.py` with sendfile; this is the path for the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from aitre.errors import ApiError
from aitre.media.store import MediaInfo, MediaStore

CACHE = "public, max-age=31536000, immutable"


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


def _headers(info: MediaInfo) -> dict[str, str]:
    headers = {
        "accept-ranges": "bytes",
        "cache-control": CACHE,
        "last-modified": formatdate(info.modified, usegmt=True),
    }
    if info.etag:
        headers["etag"] = info.etag
    return headers


async def serve_stored(request: Request, store: MediaStore, name: str) -> Response:
    redirect = await store.presigned(name)
    if redirect is not None:
        # Checked first: a name that is not ours gets our 404, not the bucket's.
        if await store.stat(name) is None:
            raise _not_found()
        return RedirectResponse(redirect, status_code=302, headers={"cache-control": "no-store"})
    info = await store.stat(name)
    if info is None:
        raise _not_found()
    headers = _headers(info)
    if info.etag and request.headers.get("if-none-match") == info.etag:
        return Response(status_code=304, headers=headers)
    wanted = byte_range(request.headers.get("range"), info.size)
    if wanted is False:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{info.size}"})
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "content-length": str(info.size)})
    start, end, status = (0, info.size - 1, 200) if wanted is None else (*wanted, 206)
    if info.size == 0:
        return Response(b"", media_type=info.content_type, headers=headers)
    chunks = await store.open(name, start, end)
    if chunks is None:
        raise _not_found()
    headers["content-length"] = str(end - start + 1)
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end}/{info.size}"
    return StreamingResponse(
        _closing(chunks), status_code=status, media_type=info.content_type, headers=headers
    )


async def _closing(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # A client that leaves mid-download closes the generator, which closes the store's stream.
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()


def _not_found() -> ApiError:
    return ApiError(404, "No such media file.", code="not_found")
