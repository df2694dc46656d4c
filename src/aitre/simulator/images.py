"""OpenAI image requests: which parameters each model takes, and what it reports back.

Shared by `/v1/images/generations` (JSON) and `/v1/images/edits` (multipart, where every field
arrives as a string).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aitre.simulator import catalog

_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt": ("1024x1024", "1536x1024", "1024x1536", "auto"),
}
_PROMPT_LIMIT = {"dall-e-2": 1000, "dall-e-3": 4000, "gpt": 32000}
# OpenAI's published output-token cost of one GPT image, by quality and size.
_OUTPUT_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}


class Invalid(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModel(LookupError):
    pass


@dataclass(slots=True)
class ImageJob:
    model: str
    prompt: str
    n: int
    width: int
    height: int
    fmt: str = "png"  # png | jpeg | webp
    want_b64: bool = True
    quality: str = "standard"
    background: str = "opaque"  # transparent | opaque
    style: str | None = None
    compression: int = 100

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def gpt(self) -> bool:
        return self.model in catalog.GPT_IMAGE_MODELS

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"


def family(model: str) -> str:
    return "gpt" if model in catalog.GPT_IMAGE_MODELS else model


def _int(fields: Mapping[str, Any], name: str, default: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise Invalid(f"`{name}` must be an integer.", name)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise Invalid(f"`{name}` must be an integer.", name)


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise Invalid(
            f"Invalid value for `{name}`: {value!r}. Supported values are: {', '.join(allowed)}.", name
        )
    return str(value)


def parse_job(fields: Mapping[str, Any], allowed_models: tuple[str, ...]) -> ImageJob:
    """Validate a request the way OpenAI does for its model; raises Invalid or UnknownModel."""
    model = fields.get("model") or "dall-e-2"
    if not isinstance(model, str) or model not in allowed_models:
        raise UnknownModel(str(model))
    fam = family(model)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("`prompt` is required and must be a non-empty string.", "prompt")
    if len(prompt) > _PROMPT_LIMIT[fam]:
        raise Invalid(f"`prompt` is longer than {_PROMPT_LIMIT[fam]} characters for {model}.", "prompt")
    n = _int(fields, "n", 1)
    if fam == "dall-e-3" and n != 1:
        raise Invalid("dall-e-3 only supports n=1.", "n")
    if not 1 <= n <= 10:
        raise Invalid("`n` must be between 1 and 10.", "n")
    size = _choice(fields, "size", _SIZES[fam], _SIZES[fam][-1] if fam == "gpt" else "1024x1024")
    w, _, h = ("1024x1024" if size == "auto" else size).partition("x")
    job = ImageJob(model, prompt, n, int(w), int(h))
    if fam == "gpt":
        _gpt_options(fields, job)
    else:
        _dalle_options(fields, job, fam)
    return job


def _gpt_options(fields: Mapping[str, Any], job: ImageJob) -> None:
    job.fmt = _choice(fields, "output_format", ("png", "jpeg", "webp"), "png")
    quality = _choice(fields, "quality", ("low", "medium", "high", "auto"), "auto")
    job.quality = "high" if quality == "auto" else quality
    background = _choice(fields, "background", ("transparent", "opaque", "auto"), "auto")
    job.background = "opaque" if background == "auto" else background
    if job.transparent and job.fmt == "jpeg":
        raise Invalid("A transparent background needs output_format png or webp.", "background")
    job.compression = _int(fields, "output_compression", 100)
    if not 0 <= job.compression <= 100:
        raise Invalid("`output_compression` must be between 0 and 100.", "output_compression")


def _dalle_options(fields: Mapping[str, Any], job: ImageJob, fam: str) -> None:
    job.want_b64 = _choice(fields, "response_format", ("url", "b64_json"), "url") == "b64_json"
    if fam == "dall-e-3":
        job.quality = _choice(fields, "quality", ("standard", "hd", "auto"), "standard")
        job.quality = "standard" if job.quality == "auto" else job.quality
        job.style = _choice(fields, "style", ("vivid", "natural"), "vivid")
    else:
        _choice(fields, "quality", ("standard", "auto"), "standard")


def revised_prompt(job: ImageJob) -> str:
    """dall-e-3 rewrites every prompt; ours is a fixed, recognisable expansion."""
    look = "vivid, richly coloured" if job.style == "vivid" else "natural, softly lit"
    return f"A {look} image of {job.prompt.strip().rstrip('.')}, rendered in fine detail."


def output_tokens(job: ImageJob) -> int:
    per_size = _OUTPUT_TOKENS[job.quality]
    return per_size.get(job.size, per_size["1024x1024"]) * job.n


def input_image_tokens(width: int, height: int) -> int:
    """Tokens for one reference image, with the tiling rule OpenAI uses for vision input:
    fit in 2048x2048, shorten the short side to 768, count 512-pixel tiles."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = -(-int(w) // 512) * -(-int(h) // 512)
    return 65 + 129 * tiles


def gpt_usage(job: ImageJob, text_tokens: int, image_tokens: int) -> dict[str, Any]:
    out = output_tokens(job)
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": out,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": out},
        "total_tokens": text_tokens + image_tokens + out,
    }
