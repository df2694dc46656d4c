"""Decoding helpers: the tests check the media itself, not just the JSON around it."""

from __future__ import annotations

import base64
import io

import av
from PIL import Image


def image_info(data: bytes) -> tuple[str, tuple[int, int], str]:
    """(format, size, mode) of an encoded image, decoded fully."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return str(img.format), img.size, img.mode


def b64_image_info(b64: str) -> tuple[str, tuple[int, int], str]:
    return image_info(base64.b64decode(b64))


def audio_seconds(data: bytes) -> float:
    """Duration by decoding every frame: streamed files carry no reliable length header."""
    with av.open(io.BytesIO(data)) as container:
        samples, rate = 0, 0
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate
    assert rate, "no audio decoded"
    return samples / rate


def png_bytes(
    size: tuple[int, int] = (64, 64), colour: tuple[int, int, int, int] = (200, 40, 40, 255)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, colour).save(buf, "PNG")
    return buf.getvalue()
