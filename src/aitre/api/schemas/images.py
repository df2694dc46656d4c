"""`POST /v1/images/generations` and `POST /v1/images/edits`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from aitre.api.schemas.base import PASSED_ON, Absent, ModelName, NonBlank, Open

ImagePrompt = Annotated[NonBlank, Field(max_length=32000, description="What to draw.")]
ImageCount = Annotated[int, Field(ge=1, le=10, description="How many images (1 to 10).")]


class ImageGenerationRequest(Open):
    """OpenAI's image request (gpt-image-1, dall-e-3, dall-e-2, Flux, ...). The gateway checks
    `model`, `prompt` and `n`; every other field goes to the upstream unchanged."""

    model: ModelName
    prompt: ImagePrompt
    n: ImageCount | None = None
    size: str | None = Field(None, description=f"e.g. `1024x1024`. {PASSED_ON}")
    quality: str | None = Field(None, description=PASSED_ON)
    style: str | None = Field(None, description=f"dall-e-3: `vivid` or `natural`. {PASSED_ON}")
    response_format: str | None = Field(
        None, description="`url` (default; the image is copied into the gateway's media store) or `b64_json`."
    )
    background: str | None = Field(None, description=PASSED_ON)
    output_format: str | None = Field(None, description=PASSED_ON)
    output_compression: int | None = Field(None, description=PASSED_ON)
    moderation: str | None = Field(None, description=PASSED_ON)
    user: str | None = Field(None, description=PASSED_ON)


class ImageEditRequest(Open):
    """A multipart form: the image(s) to edit, an optional mask and the prompt. Every field goes to
    the upstream, files included."""

    model: ModelName
    prompt: NonBlank
    image: bytes | Annotated[list[bytes], Field(min_length=1, max_length=16)] = Field(
        description="The image, or several (repeat the field; `image[]` is accepted too)."
    )
    mask: bytes | Absent = Field(None, description="A PNG whose transparent areas mark where to edit.")
    n: ImageCount = 1
    size: str | Absent = Field(None, description=PASSED_ON)
    quality: str | Absent = Field(None, description=PASSED_ON)
    response_format: str | Absent = Field(None, description="`url` (default) or `b64_json`.")
    user: str | Absent = Field(None, description=PASSED_ON)


class Image(Open):
    url: str | None = Field(None, description="A link (into the gateway's media store when re-hosted).")
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(Open):
    created: int
    data: list[Image]
    usage: dict[str, Any] | None = Field(None, description="Token usage (gpt-image models).")
