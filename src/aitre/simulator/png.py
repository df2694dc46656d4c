"""Real images for the simulator: colours and shapes from a hash of the prompt, the prompt drawn
on top, at exactly the requested size. Edits start from the uploaded image instead.

Everything here is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

# Decompression bombs: refuse inputs bigger than this many pixels.
MAX_INPUT_PIXELS = 40_000_000
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class BadImage(ValueError):
    """The upload is not an image we can read."""


@dataclass(frozen=True, slots=True)
class Canvas:
    prompt: str
    width: int
    height: int
    seed: str = ""  # more material for the hash: model, index, BFL seed
    transparent: bool = False
    fmt: str = "png"  # png | jpeg | webp
    quality: int = 90  # jpeg / webp


def open_image(data: bytes) -> Image.Image:
    """Decode an uploaded image fully (so a corrupt tail fails here, not later), as RGBA."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_INPUT_PIXELS:
                raise BadImage(f"image is too large ({img.width}x{img.height})")
            img.load()
            return img.convert("RGBA")
    except UnidentifiedImageError:
        raise BadImage("not an image in a format we can read (PNG, JPEG, WEBP, GIF)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, BadImage):
            raise
        raise BadImage(f"the image could not be decoded ({exc})") from None


def decode_data_uri(value: str) -> bytes:
    """The bytes of a `data:<type>;base64,...` URI or of bare base64."""
    payload = value.partition(",")[2] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadImage("the image is neither a data URI nor valid base64") from None


def _digest(canvas: Canvas) -> bytes:
    return hashlib.sha256(f"{canvas.seed}\x00{canvas.prompt}".encode()).digest()


def _gradient(d: bytes, width: int, height: int) -> Image.Image:
    top = np.array(list(d[0:3]), dtype=np.float32)
    bottom = np.array(list(d[3:6]), dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    angle = d[6] / 255.0
    mix = (xs * angle + ys * (1.0 - angle))[..., None]
    rgb = (top * (1.0 - mix) + bottom * mix).astype(np.uint8)
    return Image.fromarray(rgb).convert("RGBA")


def _shapes(d: bytes, width: int, height: int) -> Image.Image:
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    short = min(width, height)
    for i in range(5):
        b = d[7 + i * 5 : 12 + i * 5]
        x, y = b[0] * width // 256, b[1] * height // 256
        r = (b[2] % 96 + 32) * short // 512
        colour = (d[(i * 3 + 1) % 32], d[(i * 3 + 9) % 32], d[(i * 3 + 17) % 32], 255)
        box = (x - r, y - r, x + r, y + r)
        if b[3] % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    return layer


def _caption(img: Image.Image, text: str) -> None:
    """The prompt in a band along the bottom: the simplest proof the image is about it."""
    width, height = img.size
    size = max(12, min(width, height) // 24)
    font = ImageFont.load_default(size=size)
    chars = max(8, int(width / (size * 0.55)))
    lines = textwrap.wrap(" ".join(text.split()), chars, max_lines=4, placeholder=" …") or [""]
    band = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    line_h = int(size * 1.25)
    top = height - line_h * len(lines) - size
    draw.rectangle((0, top - size // 2, width, height), fill=(0, 0, 0, 120))
    for i, line in enumerate(lines):
        draw.text((size, top + i * line_h), line, font=font, fill=(255, 255, 255, 255))
    img.alpha_composite(band)


def _thumbnails(img: Image.Image, extras: Sequence[Image.Image]) -> None:
    """Further reference images as a strip of thumbnails along the top."""
    side = max(16, min(img.size) // 6)
    for i, extra in enumerate(extras[:5]):
        thumb = ImageOps.fit(extra, (side, side))
        img.alpha_composite(thumb, (side // 4 + i * (side + side // 4), side // 4))


def _from_source(canvas: Canvas, d: bytes, source: Image.Image, mask: Image.Image | None) -> Image.Image:
    base = ImageOps.fit(source, (canvas.width, canvas.height))
    tint = Image.new("RGBA", base.size, (d[0], d[1], d[2], 255))
    tinted = Image.blend(base, tint, 0.3)
    tinted.putalpha(base.getchannel("A"))
    if mask is None:
        return tinted
    # OpenAI's convention: the fully transparent parts of the mask are the ones to edit.
    where = ImageOps.fit(mask, base.size).getchannel("A").point(lambda a: 255 if a == 0 else 0)
    return Image.composite(tinted, base, where)


def render(
    canvas: Canvas,
    source: Image.Image | None = None,
    mask: Image.Image | None = None,
    extras: Sequence[Image.Image] = (),
) -> bytes:
    """The encoded image (format per `canvas.fmt`)."""
    return encode(draw(canvas, source, mask, extras), canvas)


def draw(
    canvas: Canvas,
    source: Image.Image | None = None,
    mask: Image.Image | None = None,
    extras: Sequence[Image.Image] = (),
) -> Image.Image:
    """The picture `render` encodes, as an RGBA image (video frames start from it)."""
    d = _digest(canvas)
    if source is not None:
        img = _from_source(canvas, d, source, mask)
    else:
        if canvas.transparent:
            img = Image.new("RGBA", (canvas.width, canvas.height), (0, 0, 0, 0))
        else:
            img = _gradient(d, canvas.width, canvas.height)
        img.alpha_composite(_shapes(d, canvas.width, canvas.height))
    _thumbnails(img, extras)
    _caption(img, canvas.prompt)
    return img


def encode(img: Image.Image, canvas: Canvas) -> bytes:
    fmt = _PIL_FORMATS[canvas.fmt]
    keep_alpha = canvas.transparent and fmt != "JPEG"
    out = img if keep_alpha else img.convert("RGB")
    buf = io.BytesIO()
    if fmt == "PNG":
        out.save(buf, fmt, compress_level=6)
    else:
        out.save(buf, fmt, quality=canvas.quality)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
