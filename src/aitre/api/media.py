"""GET /media/<name>: files from the media store, with Range support (FileResponse)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from aitre.api.common import app_state
from aitre.errors import ApiError
from aitre.media.kinds import content_type


async def get_media(request: Request) -> Response:
    name = request.path_params["name"]
    path = app_state(request).media.locate(name)
    if path is None:
        raise ApiError(404, "No such media file.", code="not_found")
    return FileResponse(
        path,
        media_type=content_type(path.suffix.lstrip(".")),
        headers={"cache-control": "public, max-age=31536000, immutable"},
    )
