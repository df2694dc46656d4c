"""GET /media/<name>: files from the media store, with Range support (FileResponse for local
files; `media.serve` for a store without them, e.g. S3: streamed or redirected)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from aitre.api.common import app_state
from aitre.media.kinds import content_type
from aitre.media.serve import serve_stored


async def get_media(request: Request) -> Response:
    name = request.path_params["name"]
    store = app_state(request).media
    path = store.locate(name)
    if path is None:  # not on this machine's disk: a shared store streams or redirects it
        return await serve_stored(request, store, name)
    return FileResponse(
        path,
        media_type=content_type(path.suffix.lstrip(".")),
        headers={"cache-control": "public, max-age=31536000, immutable"},
    )
