"""Images, whatever the upstream: what every image piece takes and what it gives back.

The request is in OpenAI images-API terms, the lingua franca of image upstreams, plus the
client's own request where it came in another shape (a multipart edit to re-send as it is, a
chat to an image model). The answer is the images (bytes, base64 or links) and the usage; the
images API shapes it as OpenAI's images answer (`facades.images_api`), image-by-chat as
markdown (`facades.image_chat`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aitre.adapters.base import Retryable
from aitre.errors import ApiError
from aitre.media.fetch import FetchRefused, decode_data_uri
from aitre.media.rehost import fetch_upstream_media
from aitre.relay.job import FormField, UploadedFile
from aitre.relay.usage import Usage

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

IMAGE_LIMIT = 64 * 1024 * 1024
T = TypeVar("T")


@dataclass(slots=True)
class ImageRequest:
    # OpenAI images-API fields except `model`: prompt, n, size, quality, response_format, ... and
    # whatever else the client sent (multipart text fields are strings).
    fields: dict[str, Any]
    references: list[UploadedFile] = field(default_factory=list)  # images to edit or start from
    mask: UploadedFile | None = None
    # The client's own multipart edit, fields and files in order: OpenAI-format upstreams get it
    # as it came (unknown fields included), with only the model mapped.
    form: list[FormField] | None = None
    # The client's own chat (image by chat), references inlined as data URIs and `stream` off:
    # upstreams whose image models answer chat get the conversation, not only its last prompt.
    chat: dict[str, Any] | None = None

    @property
    def prompt(self) -> str:
        value = self.fields.get("prompt")
        return value if isinstance(value, str) else ""

    @property
    def n(self) -> int:
        value = self.fields.get("n", 1)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    @property
    def size(self) -> str | None:
        value = self.fields.get("size")
        return value if isinstance(value, str) and value else None

    @property
    def wants_b64(self) -> bool:
        return self.fields.get("response_format") == "b64_json"


def from_json(body: dict[str, Any]) -> ImageRequest:
    """A client's `/images/generations` body."""
    return ImageRequest({k: v for k, v in body.items() if k != "model"})


def from_form(form: list[FormField]) -> ImageRequest:
    """A client's `/images/edits` multipart form."""
    fields = {k: v for k, v in form if isinstance(v, str) and k != "model"}
    refs = [v for k, v in form if k in ("image", "image[]") and isinstance(v, UploadedFile)]
    mask = next((v for k, v in form if k == "mask" and isinstance(v, UploadedFile)), None)
    return ImageRequest(fields, refs, mask, form=form)


@dataclass(slots=True)
class Image:
    """One image, in whichever form the upstream gave it."""

    data: bytes | None = None
    b64: str | None = None  # base64 as the upstream sent it: decoded only if someone needs bytes
    url: str | None = None  # a link on the upstream's side (they expire) or a data URI
    extra: dict[str, Any] = field(default_factory=dict)  # the upstream item's other fields (revised_prompt)


@dataclass(slots=True)
class Images:
    items: list[Image]
    usage: Usage = field(default_factory=Usage)
    text: str = ""  # what the upstream said besides the images (a chat image model's caption)
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # an images-API answer's other fields (size, usage, ...)


# One protocol's way to make images for a request on one channel. It raises `Retryable` when
# another channel might do better and `ApiError` when none would; it does not close the books
# (the caller does, once it has shaped the answer).
ImageMaker = Callable[["AppState", "RelayJob", "ChannelInfo", ImageRequest], Awaitable[Images]]


def bad_upstream(message: str) -> Retryable:
    return Retryable(ApiError(502, message, type="upstream_error", code="upstream_bad_response"))


async def image_bytes(state: AppState, channel: ChannelInfo, image: Image) -> bytes:
    """The image itself: as given, decoded, or downloaded from the upstream's link."""
    if image.data is not None:
        return image.data
    if image.b64 is not None:
        try:
            return base64.b64decode(image.b64, validate=True)
        except (binascii.Error, ValueError):
            raise bad_upstream("the upstream sent an image that is not valid base64") from None
    if image.url is None:
        raise bad_upstream("the upstream sent an image item without an image")
    if image.url.startswith("data:"):
        try:
            return decode_data_uri(image.url, IMAGE_LIMIT)
        except FetchRefused as refused:  # the upstream's fault, not the client's
            raise bad_upstream(f"the upstream sent a bad image: {refused.message}") from None
    return await fetch_upstream_media(state, channel, image.url)


async def all_or_nothing(work: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run `work` concurrently (n images at once); the first failure cancels the rest at once
    (no upstream keeps working, or is polled, for an answer that can no longer be given) and
    is raised as it is."""
    if len(work) == 1:
        return [await work[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(w) for w in work]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]
