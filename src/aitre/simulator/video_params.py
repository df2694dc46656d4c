"""`/v1/videos` request rules, as OpenAI's Sora 2 API states them: models, sizes, seconds, and the
reference image. Multipart fields arrive as strings, JSON ones typed; both are accepted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aitre.simulator import catalog
from aitre.simulator.files import FileStore
from aitre.simulator.png import BadImage, decode_data_uri

SIZES = ("720x1280", "1280x720")
PRO_SIZES = ("1024x1792", "1792x1024")  # sora-2-pro only
SECONDS = ("4", "8", "12")
PROMPT_LIMIT = 32_000
_ANY_SIZE = re.compile(r"(\d{2,4})x(\d{2,4})")
_OWN_FILE = re.compile(r"/files/([0-9a-f]{32}\.[a-z0-9]+)$")


class Invalid(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModel(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class VideoJob:
    model: str
    prompt: str
    seconds: int
    width: int
    height: int


def parse(fields: Mapping[str, Any], any_size: bool) -> VideoJob:
    """Check a create request; raises Invalid or UnknownModel."""
    model = fields.get("model") or "sora-2"
    if not isinstance(model, str) or model not in catalog.VIDEO_MODELS:
        raise UnknownModel(str(model))
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("`prompt` is required and must be a non-empty string.", "prompt")
    if len(prompt) > PROMPT_LIMIT:
        raise Invalid(f"`prompt` is longer than {PROMPT_LIMIT} characters.", "prompt")
    seconds = fields.get("seconds", "4")
    seconds = str(seconds) if type(seconds) is int else seconds
    if seconds not in SECONDS:
        raise Invalid(f"Invalid value for `seconds`: {seconds!r}. Supported values are: 4, 8, 12.", "seconds")
    width, height = _size(fields.get("size") or "720x1280", model, any_size)
    return VideoJob(model, prompt, int(seconds), width, height)


def _size(size: Any, model: str, any_size: bool) -> tuple[int, int]:
    pro = "pro" in model
    allowed = (*SIZES, *PRO_SIZES) if pro else SIZES
    if isinstance(size, str) and size in allowed:
        w, _, h = size.partition("x")
        return int(w), int(h)
    if size in PRO_SIZES:
        raise Invalid(f"`size` {size} needs sora-2-pro.", "size")
    free = _ANY_SIZE.fullmatch(size) if isinstance(size, str) and any_size else None
    if free:
        width, height = int(free[1]), int(free[2])
        if all(side % 2 == 0 and 16 <= side <= 2048 for side in (width, height)):
            return width, height
        raise Invalid("With `video_any_size`, sides must be even, from 16 to 2048.", "size")
    raise Invalid(f"Invalid value for `size`: {size!r}. Supported values are: {', '.join(allowed)}.", "size")


def reference_text(fields: Mapping[str, Any]) -> str | None:
    """The reference image given as text: a URL or data URI, in JSON (`input_reference` as a
    string or `{image_url}`) or as multipart fields (`input_reference[image_url]`)."""
    value = fields.get("input_reference")
    file_id = fields.get("input_reference[file_id]")
    if isinstance(value, dict):
        file_id = file_id or value.get("file_id")
        value = value.get("image_url")
    if file_id:
        raise Invalid("No Files API here: send the image, its URL or a data URL.", "input_reference")
    value = value or fields.get("input_reference[image_url]")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid("`input_reference` must be an image upload, a URL or a data URL.", "input_reference")
    return value


def linked_file(url: str, store: FileStore, param: str = "input_reference") -> bytes | None:
    """The bytes of the file at `url` when it is one this simulator serves (`.../files/<name>`),
    None for any other URL. Raises Invalid for one of ours that has expired."""
    own = _OWN_FILE.search(urlsplit(url).path)
    if own is None:
        return None
    data = store.get(own[1])
    if data is None:
        raise Invalid(f"{url} links to a file here that has expired.", param)
    return data


def image_bytes(value: str, store: FileStore, param: str = "input_reference") -> bytes | None:
    """The bytes of an image given as text: a data URI (or bare base64), or a link to a file this
    simulator serves. Other URLs give None: the simulator never fetches."""
    if value.startswith(("http://", "https://")):
        return linked_file(value, store, param)
    try:
        return decode_data_uri(value)
    except BadImage as exc:
        raise Invalid(f"Invalid image in `{param}`: {exc}.", param) from None
