"""Black Forest Labs (Flux) request rules: sizes per model family, option checks, error bodies.

Validation errors come back FastAPI-style (`422 {"detail": [...]}`), everything else as BFL's
`{"error": "<code>", "message": "..."}`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from PIL import Image
from starlette.responses import Response

from aitre.simulator.png import BadImage, decode_data_uri, open_image

# FLUX.1 models sized by width/height: multiples of 32 within 256..1440.
FLUX1_SIZED = ("flux-dev", "flux-pro", "flux-pro-1.1", "flux-schnell")
# Models sized by aspect ratio only.
ASPECT_ONLY = ("flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max")
# FLUX.2: multiples of 16, up to 4 megapixels.
FLUX2 = ("flux-2-pro", "flux-2-max", "flux-2-flex")
# Credits per image (1 credit = $0.01), roughly BFL's list prices.
COST = {
    "flux-dev": 2.5,
    "flux-pro": 5.0,
    "flux-pro-1.1": 4.0,
    "flux-pro-1.1-ultra": 6.0,
    "flux-kontext-pro": 4.0,
    "flux-kontext-max": 8.0,
    "flux-2-pro": 3.0,
    "flux-2-max": 7.0,
    "flux-2-flex": 6.0,
    "flux-schnell": 1.0,
}
_MAX_RATIO = 21 / 9
_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


class Invalid(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def bfl_error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    if status == 429:
        headers = {"retry-after": "1", **(headers or {})}
    body = {"error": _CODES.get(status, "error"), "message": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def validation_error(field_name: str, message: str, where: str = "body") -> Response:
    detail = [{"loc": [where, field_name], "msg": message, "type": "value_error"}]
    return Response(orjson.dumps({"detail": detail}), status_code=422, media_type="application/json")


@dataclass(slots=True)
class FluxJob:
    model: str
    prompt: str
    width: int
    height: int
    seed: int
    fmt: str  # jpeg | png
    upsample: bool = False
    source: Image.Image | None = None
    extras: list[Image.Image] = field(default_factory=list)

    @property
    def final_prompt(self) -> str:
        return f"{self.prompt}, highly detailed, cinematic lighting" if self.upsample else self.prompt


def _ratio(value: Any) -> float:
    w, sep, h = str(value).partition(":")
    if not sep or not w.isdigit() or not h.isdigit() or not int(w) or not int(h):
        raise Invalid("aspect_ratio", "aspect_ratio must look like 16:9")
    ratio = int(w) / int(h)
    if not 1 / _MAX_RATIO - 1e-9 <= ratio <= _MAX_RATIO + 1e-9:
        raise Invalid("aspect_ratio", "aspect_ratio must be between 21:9 and 9:21")
    return ratio


def _from_ratio(ratio: float, megapixels: float, step: int) -> tuple[int, int]:
    """BFL's "megapixel" is 1024x1024: 1:1 is 1024 square, 2048 for ultra's 4 MP."""
    width = math.sqrt(megapixels * 1024 * 1024 * ratio)
    return round(width / step) * step, round(width / ratio / step) * step


def _side(body: dict[str, Any], name: str, default: int, step: int, low: int, high: int) -> int:
    value = body.get(name, default)
    value = default if value is None else value
    if type(value) is not int or value % step or not low <= value <= high:
        raise Invalid(name, f"{name} must be a multiple of {step} between {low} and {high}")
    return value


def _size(body: dict[str, Any], model: str, source: Image.Image | None) -> tuple[int, int]:
    step = 16 if model in FLUX2 else 32
    aspect = body.get("aspect_ratio")
    sized = model not in ASPECT_ONLY and (body.get("width") is not None or body.get("height") is not None)
    if not sized and (aspect is not None or model in ASPECT_ONLY):
        if aspect is None:
            default = "16:9" if model == "flux-pro-1.1-ultra" else "1:1"
            ratio = source.width / source.height if source is not None else _ratio(default)
            ratio = min(max(ratio, 1 / _MAX_RATIO), _MAX_RATIO)
        else:
            ratio = _ratio(aspect)
        return _from_ratio(ratio, 4.0 if model == "flux-pro-1.1-ultra" else 1.0, step)
    if model in FLUX2:
        width = _side(body, "width", 1024, 16, 64, 2048)
        height = _side(body, "height", 1024, 16, 64, 2048)
        if width * height > 4_194_304:
            raise Invalid("width", "width x height must be at most 4 megapixels")
        return width, height
    return _side(body, "width", 1024, 32, 256, 1440), _side(body, "height", 768, 32, 256, 1440)


def _image(body: dict[str, Any], name: str) -> Image.Image | None:
    """A base64 reference image; URLs are accepted and ignored (the simulator never fetches)."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid(name, f"{name} must be a URL or base64 data")
    if value.startswith(("http://", "https://")):
        return None
    try:
        return open_image(decode_data_uri(value))
    except BadImage as exc:
        raise Invalid(name, f"{name} could not be decoded: {exc}") from None


def parse(body: dict[str, Any], model: str) -> FluxJob:
    """Check a submit body (in a worker thread: it may decode images); raises Invalid."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("prompt", "field required")
    seed = body.get("seed")
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(f"{model}\x00{prompt}".encode()).digest()[:4], "big")
    if type(seed) is not int:
        raise Invalid("seed", "seed must be an integer")
    fmt = body.get("output_format") or "jpeg"
    if fmt not in ("jpeg", "png"):
        raise Invalid("output_format", "output_format must be jpeg or png")
    tolerance = body.get("safety_tolerance", 2)
    if type(tolerance) is not int or not 0 <= tolerance <= 6:
        raise Invalid("safety_tolerance", "safety_tolerance must be an integer between 0 and 6")
    source = _image(body, "input_image") or _image(body, "image_prompt")
    extras = [img for i in range(2, 9) if (img := _image(body, f"input_image_{i}")) is not None]
    width, height = _size(body, model, source)
    upsample = body.get("prompt_upsampling") is True
    return FluxJob(model, prompt, width, height, seed, fmt, upsample, source, extras)
