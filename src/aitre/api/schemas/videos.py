"""OpenAI's video API (`/v1/videos`): the create and remix requests, the video object, its list and
the deleted answer, as the official SDK's types have them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from aitre.api.schemas.base import Absent, NonBlank, Open

VideoPrompt = Annotated[NonBlank, Field(max_length=32000, description="What the video shows.")]
VideoModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="`sora-2` (default), `sora-2-pro`, a dated snapshot, or another video model the "
        "operator serves.",
    ),
]
SECONDS = "Length in seconds, as a string: `4` (default), `8` or `12` for Sora; other models take 1 to 120."
SIZE = (
    "`WIDTHxHEIGHT`: `720x1280` (default) or `1280x720` for Sora, also `1024x1792` and `1792x1024` "
    "for sora-2-pro; other models take any size from 16 to 4096 a side."
)


class ImageReference(BaseModel):
    image_url: str | None = Field(None, description="An http(s) URL (fetched by the gateway) or a data URL.")
    file_id: str | None = Field(None, description="Not supported here (there is no Files API): refused.")


class VideoCreateRequest(Open):
    """A video to make. Fields the gateway does not know (up to 16, plain values) go upstream as
    they came."""

    prompt: VideoPrompt
    model: VideoModelName | None = None
    seconds: str | int | None = Field(None, description=SECONDS)
    size: str | None = Field(None, description=SIZE)
    input_reference: str | ImageReference | None = Field(
        None,
        description="An image the video starts from (PNG, JPEG or WebP, at most "
        "`AITRE_VIDEO_MAX_IMAGE_BYTES`): a URL, a data URL, or `{image_url}`.",
    )


class VideoCreateForm(Open):
    """The same as a multipart form (what the SDK sends): the image as the `input_reference` file,
    or its URL in `input_reference` / `input_reference[image_url]`."""

    prompt: VideoPrompt
    model: VideoModelName | Absent = None
    seconds: str | Absent = Field(None, description=SECONDS)
    size: str | Absent = Field(None, description=SIZE)
    input_reference: bytes | str | Absent = Field(None, description="The image file, or its URL.")


class VideoRemixRequest(BaseModel):
    prompt: VideoPrompt


class VideoError(BaseModel):
    code: str = Field(
        description="The upstream's code when it is safe to show (e.g. `moderation_blocked`), else "
        "`video_generation_failed`, `task_timeout`, `upstream_failed`, `cancelled`, ..."
    )
    message: str


class Video(BaseModel):
    """A video job (aitre's id; the upstream's stays with the gateway)."""

    id: str = Field(description="`video_` and 32 hex digits.")
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(ge=0, le=100)
    created_at: int = Field(description="Unix seconds.")
    completed_at: int | None = Field(description="Unix seconds: when it completed or failed.")
    expires_at: int | None = Field(
        description="When the files may be gone (the media retention, `AITRE_MEDIA_RETENTION_DAYS`); "
        "null until completed, and when kept forever."
    )
    seconds: str
    size: str
    prompt: str | None
    remixed_from_video_id: str | None
    error: VideoError | None


class VideoList(BaseModel):
    object: Literal["list"]
    data: list[Video]
    first_id: str | None
    last_id: str | None = Field(description="Pass it as `after` for the next page.")
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"]
    deleted: Literal[True]
