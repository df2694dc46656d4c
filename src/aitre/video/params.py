"""What a video request asks for, checked and bounded before anything is stored or charged: the
model, prompt, duration and size (as each model takes them), a reference image (an upload, a
URL fetched through the guarded fetcher, or a data URL), and the fields aitre does not know,
which go upstream as they came (bounded).

Requests arrive as JSON or as multipart forms (the SDK's way); both give the same `VideoParams`.
Every refusal is a 400 in OpenAI's error format naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aitre.errors import ApiError, bad_request
from aitre.media.kinds import content_type, sniff
from aitre.video.models import (
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    DEFAULT_SIZE,
    MAX_SECONDS,
    parse_size,
    seconds_choices,
    sizes,
)

IMAGE_KINDS = ("png", "jpg", "webp")
MAX_MODEL = 128
MAX_URL = 8 * 1024 * 1024  # a data URL of a large image; bounded by the body limit first
MAX_EXTRA_FIELDS = 16
MAX_EXTRA_CHARS = 4096
KNOWN = frozenset({"model", "prompt", "seconds", "size", "input_reference"})
VIA = ("videos", "chat")

# (url, param) -> the bytes at a URL (or of a data URL), fetched through the guarded fetcher
Fetch = Callable[[str, str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Limits:
    prompt_chars: int
    image_bytes: int


@dataclass(frozen=True, slots=True)
class InputImage:
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class VideoParams:
    """A checked video request. `model` is the client's (billing) name; `upstream_model` what a
    `/v1/videos` upstream is asked for (a channel's model mapping of `model` wins over it)."""

    model: str
    prompt: str
    seconds: str = DEFAULT_SECONDS
    size: str = DEFAULT_SIZE
    upstream_model: str | None = None
    input_image: InputImage | None = None
    remix_of: str | None = None  # aitre's id of the video remixed
    via: str = "videos"  # how the client asked: `/v1/videos` or Sora by chat
    extra: dict[str, Any] = field(default_factory=dict)  # fields aitre does not know, for the upstream


def _text(value: Any, name: str, limit: int, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise bad_request(f"`{name}` is required and must be a non-empty string.", param=name)
        return None
    if not isinstance(value, str):
        raise bad_request(f"`{name}` must be a string.", param=name)
    if required and not value.strip():
        raise bad_request(f"`{name}` is required and must be a non-empty string.", param=name)
    if len(value) > limit:
        raise bad_request(f"`{name}` is longer than {limit} characters.", param=name)
    if "\x00" in value:
        raise bad_request(f"`{name}` contains a NUL character.", param=name)
    return value


def model_name(value: Any) -> str:
    if value == "":
        raise bad_request("`model` must not be empty (leave it out for sora-2).", param="model")
    model = _text(value, "model", MAX_MODEL) or DEFAULT_MODEL
    if not model.isprintable():
        raise bad_request("`model` contains non-printable characters.", param="model", code="invalid_model")
    return model


def seconds_of(model: str, value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_SECONDS
    text = str(value) if type(value) is int else value
    choices = seconds_choices(model)
    if choices is not None:
        if text not in choices:
            raise bad_request(
                f"Invalid value for `seconds`: {str(text)[:20]!r}. "
                f"Supported values are: {', '.join(choices)}.",
                param="seconds",
                code="invalid_value",
            )
        return str(text)
    digits = isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 4
    if not digits or not 1 <= int(text) <= MAX_SECONDS:
        raise bad_request(
            f"`seconds` must be a whole number of seconds from 1 to {MAX_SECONDS}.",
            param="seconds",
            code="invalid_value",
        )
    return str(int(text))


def size_of(model: str, value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_SIZE
    allowed = sizes(model)
    if isinstance(value, str) and (value in allowed if allowed is not None else parse_size(value)):
        return value
    shown = repr(value)[:40]
    if allowed is not None:
        message = (
            f"Invalid value for `size`: {shown}. Supported values for {model} are: {', '.join(allowed)}."
        )
    else:
        message = f"Invalid value for `size`: {shown}. Expected `WIDTHxHEIGHT`, each side from 16 to 4096."
    raise bad_request(message, param="size", code="invalid_value")


def picture(data: bytes, limit: int) -> InputImage:
    if len(data) > limit:
        raise ApiError(
            413,
            f"`input_reference` is larger than {limit} bytes.",
            param="input_reference",
            code="file_too_large",
        )
    ext = sniff(data)
    if ext not in IMAGE_KINDS:
        raise bad_request(
            "`input_reference` must be a PNG, JPEG or WebP image.",
            param="input_reference",
            code="invalid_image",
        )
    return InputImage(data, content_type(ext))


async def _reference_text(value: Any, limits: Limits, fetch: Fetch) -> InputImage | None:
    """A reference given as text: a URL or data URL, as a string or `{image_url}` (`file_id`:
    there is no Files API here)."""
    if isinstance(value, Mapping):
        if value.get("file_id"):
            raise bad_request(
                "`input_reference.file_id`: this gateway has no Files API; send the image, its URL "
                "or a data URL.",
                param="input_reference",
            )
        value = value.get("image_url")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://", "data:")):
        raise bad_request(
            "`input_reference` must be an image upload, an http(s) URL or a data URL.",
            param="input_reference",
        )
    if len(value) > MAX_URL or (not value.startswith("data:") and len(value) > 4096):
        raise bad_request("`input_reference` is too long.", param="input_reference")
    return picture(await fetch(value, "input_reference"), limits.image_bytes)


def _extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields aitre does not know: passed upstream, if they are few, short and plain."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in KNOWN or name.startswith("input_reference["):
            continue
        if len(out) >= MAX_EXTRA_FIELDS:
            raise bad_request(f"At most {MAX_EXTRA_FIELDS} fields beyond the documented ones.")
        if len(name) > 64 or not name.isascii() or not name.isprintable():
            raise bad_request("A field name is too long or not printable ASCII.")
        if isinstance(value, str) and len(value) > MAX_EXTRA_CHARS:
            raise bad_request(f"`{name}` is longer than {MAX_EXTRA_CHARS} characters.", param=name)
        if isinstance(value, str) and "\x00" in value:
            raise bad_request(f"`{name}` contains a NUL character.", param=name)
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise bad_request(f"`{name}` must be a string, number or boolean.", param=name)
        out[name] = value
    return out


def _common(fields: Mapping[str, Any], limits: Limits) -> tuple[str, str, str, str]:
    model = model_name(fields.get("model"))
    prompt = _text(fields.get("prompt"), "prompt", limits.prompt_chars, required=True) or ""
    return model, prompt, seconds_of(model, fields.get("seconds")), size_of(model, fields.get("size"))


async def from_json(body: Mapping[str, Any], limits: Limits, fetch: Fetch) -> VideoParams:
    model, prompt, seconds, size = _common(body, limits)
    extra = _extra(body)
    image = await _reference_text(body.get("input_reference"), limits, fetch)
    return VideoParams(model, prompt, seconds, size, input_image=image, extra=extra)


async def from_form(
    fields: Mapping[str, str], files: Mapping[str, bytes], limits: Limits, fetch: Fetch
) -> VideoParams:
    """A multipart create: text fields (`input_reference[image_url]` as the SDK sends an image
    reference object), and the uploaded `input_reference` file, if any."""
    model, prompt, seconds, size = _common(fields, limits)
    extra = _extra(fields)
    if set(files) - {"input_reference"}:
        raise bad_request("The only file this route takes is `input_reference`.", param="input_reference")
    uploaded = files.get("input_reference")
    if uploaded is not None:
        image: InputImage | None = picture(uploaded, limits.image_bytes)
    else:
        reference: Any = fields.get("input_reference")
        if reference is None and (
            "input_reference[image_url]" in fields or "input_reference[file_id]" in fields
        ):
            reference = {
                "image_url": fields.get("input_reference[image_url]"),
                "file_id": fields.get("input_reference[file_id]"),
            }
        image = await _reference_text(reference, limits, fetch)
    return VideoParams(model, prompt, seconds, size, input_image=image, extra=extra)


def remix_prompt(body: Mapping[str, Any], limits: Limits) -> str:
    return _text(body.get("prompt"), "prompt", limits.prompt_chars, required=True) or ""
