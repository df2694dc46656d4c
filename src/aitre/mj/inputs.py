"""What each MJ submit accepts, checked and bounded before anything is stored or charged.

Every check failure is a `Refusal` with code 4 (midjourney-proxy's validation error). Images
arrive as data URLs (or, where midjourney-proxy takes them, http(s) links, fetched through the
guarded fetcher: never a private address); they are decoded here, must be real pictures, and
travel on as bytes: the route stores them in the media store and keeps only their names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aitre.media.kinds import sniff
from aitre.mj.answers import Refusal, invalid

BOT_TYPES = ("MID_JOURNEY", "NIJI_JOURNEY")
DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
IMAGE_KINDS = ("png", "jpg", "webp", "gif")
MAX_STATE = 4096
MAX_URL = 2048
MAX_ID = 64
MAX_CUSTOM_ID = 256
MAX_REFERENCES = 10  # imagine's reference images, as midjourney-proxy's simulator and Discord allow

Fetch = Callable[[str, str], Awaitable[bytes]]  # (url, field) -> bytes; raises Refusal


@dataclass(frozen=True, slots=True)
class Limits:
    prompt_chars: int
    image_bytes: int


@dataclass(slots=True)
class Submission:
    """A checked submit: the upstream path and body (without images) and the images by field."""

    action: str
    model: str
    path: str
    body: dict[str, Any]
    images: dict[str, list[bytes]] = field(default_factory=dict)
    notify_hook: str | None = None
    state: str | None = None
    prompt: str = ""


def text(body: dict[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise invalid(f"{name} must not be empty")
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    if required and not value.strip():
        raise invalid(f"{name} must not be empty")
    if len(value) > limit:
        raise invalid(f"{name} is longer than {limit} characters")
    return value


def bot_type(body: dict[str, Any]) -> str:
    value = body.get("botType") or "MID_JOURNEY"
    if value not in BOT_TYPES:
        raise invalid(f"botType must be one of {', '.join(BOT_TYPES)}")
    return str(value)


def notify_hook(body: dict[str, Any]) -> str | None:
    """The hook's form only; whether its host is public is checked by the caller (it resolves)."""
    hook = text(body, "notifyHook", MAX_URL)
    if hook is None:
        return None
    parts = urlsplit(hook)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("notifyHook must be an http(s) URL")
    return hook


def task_id(body: dict[str, Any], name: str = "taskId") -> str:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # clients that parse ids as numbers send them back as numbers
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} must not be empty")
    if len(value) > MAX_ID:
        raise invalid(f"{name} is too long")
    return value.strip()


def decode_data_url(value: str, name: str, limit: int) -> bytes:
    """A data URL (or bare base64, as some clients send) as bytes: valid base64, a picture."""
    header, sep, payload = value.partition(",")
    if not sep:
        header, payload = "", value
    elif not header.startswith("data:") or not header.endswith(";base64"):
        raise invalid(f"{name} must be a base64 data URL (data:image/png;base64,...)")
    if len(payload) > limit * 4 // 3 + 4:
        raise invalid(f"{name}: an image is larger than {limit} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{name}: the image is not valid base64") from None
    return picture(data, name, limit)


def picture(data: bytes, name: str, limit: int) -> bytes:
    if len(data) > limit:
        raise invalid(f"{name}: an image is larger than {limit} bytes")
    if sniff(data) not in IMAGE_KINDS:
        raise invalid(f"{name}: not a PNG, JPEG, WebP or GIF picture")
    return data


async def image(value: Any, name: str, limits: Limits, fetch: Fetch) -> bytes:
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} must hold images as data URLs")
    if value.startswith(("http://", "https://")):
        if len(value) > MAX_URL:
            raise invalid(f"{name}: the URL is too long")
        return picture(await fetch(value, name), name, limits.image_bytes)
    if len(value) > 1024 * 1024:  # decoding megabytes of base64 would hold up the event loop
        return await asyncio.to_thread(decode_data_url, value, name, limits.image_bytes)
    return decode_data_url(value, name, limits.image_bytes)


async def images(
    body: dict[str, Any], name: str, least: int, most: int, limits: Limits, fetch: Fetch
) -> list[bytes]:
    values = body.get(name)
    if values is None:
        values = []
    if not isinstance(values, list):
        raise invalid(f"{name} must be a list of data URLs")
    if not least <= len(values) <= most:
        span = f"{least} to {most}" if least != most else str(least)
        raise invalid(f"{name} must hold {span} images, not {len(values)}")
    return [await image(v, name, limits, fetch) for v in values]


def common(sub: Submission, body: dict[str, Any]) -> Submission:
    sub.notify_hook = notify_hook(body)
    sub.state = text(body, "state", MAX_STATE)
    return sub


async def imagine(body: dict[str, Any], limits: Limits, fetch: Fetch) -> Submission:
    prompt = text(body, "prompt", limits.prompt_chars, required=True) or ""
    refs = await images(body, "base64Array", 0, MAX_REFERENCES, limits, fetch)
    if body.get("base64") and not refs:  # the older single-image field
        refs = [await image(body["base64"], "base64", limits, fetch)]
    upstream = {"prompt": prompt, "botType": bot_type(body)}
    sub = Submission("IMAGINE", "mj_imagine", "/mj/submit/imagine", upstream, prompt=prompt)
    if refs:
        sub.images["base64Array"] = refs
    return common(sub, body)


async def blend(body: dict[str, Any], limits: Limits, fetch: Fetch) -> Submission:
    dimensions = body.get("dimensions") or "SQUARE"
    if dimensions not in DIMENSIONS:
        raise invalid(f"dimensions must be one of {', '.join(DIMENSIONS)}")
    pics = await images(body, "base64Array", 2, 5, limits, fetch)
    upstream = {"dimensions": dimensions, "botType": bot_type(body)}
    sub = Submission("BLEND", "mj_blend", "/mj/submit/blend", upstream, {"base64Array": pics})
    return common(sub, body)


async def describe(body: dict[str, Any], limits: Limits, fetch: Fetch) -> Submission:
    source = body.get("base64") or body.get("link")
    if not source:
        raise invalid("base64 must not be empty")
    pic = await image(source, "base64", limits, fetch)
    upstream = {"botType": bot_type(body)}
    sub = Submission("DESCRIBE", "mj_describe", "/mj/submit/describe", upstream, {"base64": [pic]})
    return common(sub, body)


async def shorten(body: dict[str, Any], limits: Limits, fetch: Fetch) -> Submission:
    prompt = text(body, "prompt", limits.prompt_chars, required=True) or ""
    upstream = {"prompt": prompt, "botType": bot_type(body)}
    return common(Submission("SHORTEN", "mj_shorten", "/mj/submit/shorten", upstream, prompt=prompt), body)


async def swap_face(body: dict[str, Any], limits: Limits, fetch: Fetch) -> Submission:
    found: dict[str, list[bytes]] = {}
    for role in ("source", "target"):
        value = body.get(f"{role}Base64") or body.get(f"{role}Url")
        if not value:
            raise invalid(f"{role}Base64 must not be empty")
        found[f"{role}Base64"] = [await image(value, f"{role}Base64", limits, fetch)]
    sub = Submission("SWAP_FACE", "swap_face", "/mj/insight-face/swap", {}, found)
    return common(sub, body)


async def modal_input(body: dict[str, Any], limits: Limits) -> tuple[str | None, bytes | None]:
    """The modal's prompt and mask (a black-and-white picture), checked."""
    prompt = text(body, "prompt", limits.prompt_chars)
    mask = body.get("maskBase64")
    decoded = None
    if mask:
        if not isinstance(mask, str):
            raise invalid("maskBase64 must be a data URL")
        decoded = await asyncio.to_thread(decode_data_url, mask, "maskBase64", limits.image_bytes)
    return prompt, decoded


SUBMITS = {
    "imagine": imagine,
    "blend": blend,
    "describe": describe,
    "shorten": shorten,
    "swap_face": swap_face,
}

__all__ = ["SUBMITS", "Limits", "Refusal", "Submission"]
