"""Decoding helpers: the tests check the media itself, not just the JSON around it."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
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


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    size: tuple[int, int]
    frames: int
    seconds: float  # the container's duration
    audio_codec: str | None
    audio_seconds: float  # by decoding every audio frame


def video_info(data: bytes) -> VideoInfo:
    """Decode every frame of an mp4: a file that plays this far plays in a browser too."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        frames = list(container.decode(video=0))
        seconds = (container.duration or 0) / 1_000_000
        size = (frames[0].width, frames[0].height) if frames else (0, 0)
        audio_codec = container.streams.audio[0].codec_context.name if container.streams.audio else None
    audio = audio_seconds(data) if audio_codec else 0.0
    return VideoInfo(codec, size, len(frames), seconds, audio_codec, audio)


def video_frame(data: bytes, index: int = 0) -> npt.NDArray[np.uint8]:
    """One decoded frame, as RGB pixels."""
    with av.open(io.BytesIO(data)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                pixels: npt.NDArray[np.uint8] = frame.to_ndarray(format="rgb24")
                return pixels
    raise AssertionError(f"the video has no frame {index}")


def quadrants_png(size: tuple[int, int]) -> bytes:
    """An image no prompt would draw: four flat colours, one per quarter."""
    w, h = size
    img = Image.new("RGB", size, (230, 30, 30))
    img.paste((30, 200, 40), (w // 2, 0, w, h // 2))
    img.paste((40, 60, 220), (0, h // 2, w // 2, h))
    img.paste((240, 230, 40), (w // 2, h // 2, w, h))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
