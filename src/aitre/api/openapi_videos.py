"""The video routes in the OpenAPI document (see `openapi_public`): OpenAI's video API, answered by
aitre's `video` tasks. What each case answers in words: docs/video.md."""

from __future__ import annotations

from typing import Any

from aitre.api.openapi_build import Answer, Body, Param, PublicRoute
from aitre.api.schemas.base import OpenAIErrorResponse
from aitre.api.schemas.videos import (
    Video,
    VideoCreateForm,
    VideoCreateRequest,
    VideoDeleted,
    VideoList,
    VideoRemixRequest,
)

TAG_NAME = "Videos"
TAG = {
    "name": TAG_NAME,
    "description": "OpenAI's video API: videos made as durable tasks on any video channel.",
}
JSON = "application/json"
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
VIDEO_ID = Param("video_id", "path", "The video's id (`video_...`).", required=True)
POLL = {"openai-poll-after-ms": "While queued or in progress: how long to wait before asking again."}
FILE_HEADERS = {
    "Accept-Ranges": "`bytes`.",
    "Cache-Control": "`private, max-age=86400`: the file never changes.",
    "ETag": "The file's version (`If-None-Match` → 304).",
    "Last-Modified": "When the file was kept.",
}
FILES: dict[str, Any] = {"video/mp4": BINARY, "image/webp": BINARY, "image/jpeg": BINARY, "image/png": BINARY}


def _error(description: str) -> Answer:
    return Answer(description, {JSON: OpenAIErrorResponse})


ERRORS: dict[int | str, Answer] = {
    401: _error("Missing, unknown or expired API key."),
    403: _error("`ip_not_allowed` for this key (or, creating, `model_not_allowed`)."),
    404: _error("`video_not_found`: no such video, another user's, or deleted (the same answer)."),
    "default": _error("Any other error, in the same shape (500 `internal_error`)."),
}
CREATE_ERRORS: dict[int | str, Answer] = {
    400: _error(
        "A field out of bounds (`param` names it): prompt, seconds, size, an input_reference that is "
        "not an image or points where the gateway may not fetch; `model_not_priced`."
    ),
    402: _error("`insufficient_quota`: the balance cannot cover the video."),
    404: _error("`model_not_found`: no channel serves the model."),
    413: _error("The body, or the reference image, is larger than the gateway accepts."),
    429: _error(
        "`too_many_open_videos`: the user has as many videos in progress as allowed.",
    ),
    503: _error("`no_available_channel`: no channel can make this video now."),
}
VIDEO = Answer("The video job.", {JSON: Video}, POLL)

ROUTES: tuple[PublicRoute, ...] = (
    PublicRoute(
        ("POST",),
        "/v1/videos",
        "createVideo",
        "Make a video (text or image to video)",
        TAG_NAME,
        {200: VIDEO, **ERRORS, **CREATE_ERRORS},
        "Answered at once, `queued`; the video is made in the background (its cost reserved now, "
        "charged when it completes, refunded if it fails). Poll `GET /v1/videos/{video_id}`.",
        Body(
            {JSON: VideoCreateRequest, "multipart/form-data": VideoCreateForm},
            example={"model": "sora-2", "prompt": "A calico cat playing a piano on stage", "seconds": "4"},
        ),
    ),
    PublicRoute(
        ("GET",),
        "/v1/videos",
        "listVideos",
        "The caller's videos, a page at a time",
        TAG_NAME,
        {
            200: Answer("A cursor page.", {JSON: VideoList}),
            400: _error("`limit` not 1 to 100, `order` not `asc`/`desc`, or `after` not one of your videos."),
            **ERRORS,
        },
        params=(
            Param("after", "query", "The `last_id` of the previous page."),
            Param("limit", "query", "1 to 100 (default 20)."),
            Param("order", "query", "`desc` (newest first, default) or `asc`."),
        ),
    ),
    PublicRoute(
        ("GET",),
        "/v1/videos/{video_id}",
        "retrieveVideo",
        "One of the caller's videos",
        TAG_NAME,
        {200: VIDEO, **ERRORS},
        params=(VIDEO_ID,),
    ),
    PublicRoute(
        ("DELETE",),
        "/v1/videos/{video_id}",
        "deleteVideo",
        "Delete a video and its files (cancelled and refunded if still running)",
        TAG_NAME,
        {200: Answer("Deleted.", {JSON: VideoDeleted}), **ERRORS},
        params=(VIDEO_ID,),
    ),
    PublicRoute(
        ("GET", "HEAD"),
        "/v1/videos/{video_id}/content",
        "downloadVideoContent",
        "A completed video's file: the mp4, its thumbnail or its spritesheet",
        TAG_NAME,
        {
            200: Answer("The whole file.", FILES, FILE_HEADERS),
            206: Answer(
                "The asked-for byte range (several ranges: `multipart/byteranges`).",
                {**FILES, "multipart/byteranges": BINARY},
                {**FILE_HEADERS, "Content-Range": "The range sent, e.g. `bytes 0-9/1234`."},
            ),
            304: Answer("`If-None-Match` matched: the copy the client has is current.", {}, FILE_HEADERS),
            400: _error("`video_not_ready` (not completed), or an unknown `variant`."),
            416: Answer(
                "The range lies outside the file.",
                {},
                {"Content-Range": "`bytes */<size>`."},
                request_id=False,
            ),
            **ERRORS,
            404: _error(
                "`video_not_found`, `variant_not_available` (the upstream made none), `video_expired`."
            ),
        },
        params=(
            VIDEO_ID,
            Param("variant", "query", "`video` (default, MP4), `thumbnail` (WebP) or `spritesheet` (JPEG)."),
            Param("Range", "header", "`bytes=<start>-<end>`, several ranges comma-separated."),
            Param("If-None-Match", "header", "An ETag from an earlier answer."),
        ),
    ),
    PublicRoute(
        ("POST",),
        "/v1/videos/{video_id}/remix",
        "remixVideo",
        "A new video from a completed one and a new prompt",
        TAG_NAME,
        {
            200: VIDEO,
            **ERRORS,
            **{k: v for k, v in CREATE_ERRORS.items() if k in (402, 429)},
            400: _error("`video_not_ready` (the source has not completed), or a bad prompt."),
        },
        "Made on the channel that made the source, at the source's model, length and size (and price).",
        Body({JSON: VideoRemixRequest}),
        params=(VIDEO_ID,),
    ),
)
