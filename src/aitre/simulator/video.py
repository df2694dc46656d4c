"""Real video for the simulator: an mp4 (H.264 yuv420p + an AAC tone) made with PyAV, plus the
thumbnail (WEBP) and spritesheet (JPEG grid) that `/v1/videos/{id}/content` also serves.

The picture is the prompt's image (colours, shapes, caption: `png.draw`) with a ball crossing it
and a bar along the top that fills as the clip plays; image-to-video starts from the input
image (the first frame is that image, fitted to the size) and fades toward the prompt's image.
The Sora-by-chat models stamp a watermark: the local remover's mark template (an approximation of
Sora's semi-transparent white logo, `aitre.watermark`), alpha-blended at the scale the remover
expects for the video's size, at a fixed spot top right. So a clip from here, fed to the local
`sora_remover`, has its mark found and taken out as a real Sora clip's would be; the simulator's
own `remove_watermark` only paints the mark's box over.

Everything here is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps

from aitre.simulator.png import Canvas, draw, open_image
from aitre.watermark.template import MarkTemplate

FPS = 10
AUDIO_RATE = 24_000  # AAC's encoder is the slow part: fewer samples, faster clips
# Marks files this module wrote (the mp4's comment tag).
MARKER = "aitre simulator video"
# The shorter side on which the mark template is drawn 1:1 (the remover's default reference).
WATERMARK_REFERENCE = 720
_SPRITE_TILE = 160  # width of one spritesheet tile
_SPRITE_COLUMNS = 5
_SPRITE_MAX_TILES = 20
# faststart puts the index first (players start before the whole file is in) by moving data
# after writing, which FFmpeg does on a named file only: mp4s are written to a temporary one.
# The same clip gives the same bytes: no encoder version strings, one encoder thread.
_MUX_OPTIONS = {"movflags": "+faststart", "fflags": "+bitexact"}
_H264_OPTIONS = {"preset": "ultrafast", "crf": "26", "threads": "1", "flags": "+bitexact"}


class BadVideo(ValueError):
    """Bytes that are not a video we can decode."""


@dataclass(frozen=True, slots=True)
class Clip:
    prompt: str
    width: int  # even: yuv420p halves both sides for colour
    height: int
    seconds: int
    seed: str = ""  # more material for the hash: model, remix source
    reference: bytes | None = None  # an encoded image: image-to-video
    watermark: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    mp4: bytes
    thumbnail: bytes  # WEBP, the middle frame
    spritesheet: bytes  # JPEG, one tile per second


def watermark_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the watermark goes (left, top, right, bottom): top right, under the time bar, as
    large as the remover expects the mark on a video of this size."""
    mark_h, mark_w = _mark_alpha(width, height).shape
    margin = max(1, min(width, height) // 40)
    mark_w, mark_h = min(mark_w, width), min(mark_h, height)
    left = max(0, width - margin - mark_w)
    top = max(0, min(_bar_height(height) + margin, height - mark_h))
    return left, top, left + mark_w, top + mark_h


@functools.cache
def _template() -> MarkTemplate:
    return MarkTemplate.load(None, WATERMARK_REFERENCE)


def _mark_alpha(width: int, height: int) -> npt.NDArray[np.float32]:
    template = _template()
    return template.at(template.expected_scale(width, height), full_range=False).alpha


def _bar_height(height: int) -> int:
    return max(2, height // 60)


def _digest(clip: Clip) -> bytes:
    return hashlib.sha256(f"{clip.seed}\x00{clip.prompt}".encode()).digest()


def _watermark(width: int, height: int) -> tuple[Image.Image, Image.Image]:
    """The stamp, drawn once per clip and pasted on every frame: white, and its opacity (as an
    8-bit mask: `paste` blends `white * a + frame * (1 - a)`, the remover's model of the mark)."""
    left, top, right, bottom = watermark_box(width, height)
    alpha = _mark_alpha(width, height)[: bottom - top, : right - left]
    mask = Image.fromarray(np.round(alpha * 255).astype(np.uint8), mode="L")
    return Image.new("RGB", mask.size, (255, 255, 255)), mask


def _frames(clip: Clip, d: bytes) -> Iterator[Image.Image]:
    """Every frame, as RGB images of the clip's size."""
    w, h = clip.width, clip.height
    scene = draw(Canvas(clip.prompt or "video", w, h, seed=clip.seed)).convert("RGB")
    start = ImageOps.fit(open_image(clip.reference), (w, h)).convert("RGB") if clip.reference else None
    total = clip.seconds * FPS
    radius = max(2, min(w, h) // 12)
    ball = (d[20], d[21], d[22])
    bar = _bar_height(h)
    stamp = _watermark(w, h) if clip.watermark else None
    for i in range(total):
        t = i / max(1, total - 1)
        if start is not None and i == 0:
            frame = start.copy()
        else:
            frame = Image.blend(start, scene, 0.6 * t) if start is not None else scene.copy()
            pen = ImageDraw.Draw(frame)
            # The ball crosses and comes back once; it bobs twice.
            x = radius + (w - 2 * radius) * (1 - abs(1 - 2 * t))
            y = h / 2 + h / 5 * math.sin(4 * math.pi * t)
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ball, outline=(255, 255, 255))
            filled = round(w * (i + 1) / total)
            if filled:
                pen.rectangle((0, 0, filled - 1, bar - 1), fill=(255, 255, 255))
        if stamp is not None:
            frame.paste(stamp[0], watermark_box(w, h)[:2], stamp[1])
        yield frame


def _tone(clip: Clip, d: bytes) -> npt.NDArray[np.float32]:
    """A sine tone pitched from the prompt, swelling and fading every two seconds."""
    t = np.arange(clip.seconds * AUDIO_RATE, dtype=np.float32) / AUDIO_RATE
    freq = 220.0 + d[23] % 220
    swell = 0.55 + 0.45 * np.sin(np.pi * t) ** 2
    samples: npt.NDArray[np.float32] = (0.25 * np.sin(2 * np.pi * freq * t) * swell).astype(np.float32)
    return samples


def _spritesheet(tiles: list[Image.Image]) -> bytes:
    width = min(_SPRITE_TILE, tiles[0].width)
    height = max(1, round(tiles[0].height * width / tiles[0].width))
    columns = min(len(tiles), _SPRITE_COLUMNS)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for i, tile in enumerate(tiles):
        sheet.paste(tile.resize((width, height)), ((i % columns) * width, (i // columns) * height))
    return _save(sheet, "JPEG")


def _save(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "WEBP":
        img.save(buf, fmt, quality=80, method=0)  # method 0: the fastest encoder setting
    else:
        img.save(buf, fmt, quality=85)
    return buf.getvalue()


def render(clip: Clip) -> Rendered:
    """The clip as an mp4, with its thumbnail and spritesheet. Raises BadImage for a reference
    image that cannot be decoded."""
    d = _digest(clip)
    total = clip.seconds * FPS
    middle = total // 2
    sprite_every = max(FPS, -(-total // _SPRITE_MAX_TILES))
    thumbnail: Image.Image | None = None
    tiles: list[Image.Image] = []
    with _mp4_file() as path, av.open(str(path), mode="w", format="mp4", options=_MUX_OPTIONS) as out:
        out.metadata["title"] = clip.prompt
        out.metadata["comment"] = MARKER
        video = out.add_stream("libx264", rate=FPS, options=_H264_OPTIONS)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        assert isinstance(audio, av.AudioStream)
        audio.bit_rate = 48_000
        sound = _Sound(_tone(clip, d), audio)
        for i, frame in enumerate(_frames(clip, d)):
            if i == middle:
                thumbnail = frame
            if i % sprite_every == 0:
                tiles.append(frame)
            picture = av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
            # Keep the sound level with the picture, so the muxer interleaves without buffering.
            out.mux(sound.encode_until((i + 1) * AUDIO_RATE // FPS))
        out.mux(video.encode(None))
        out.mux(sound.encode_until(None))
        out.close()
        mp4 = path.read_bytes()
    assert thumbnail is not None
    return Rendered(mp4, _save(thumbnail, "WEBP"), _spritesheet(tiles))


@contextmanager
def _mp4_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aitre-sim-video-") as folder:
        yield Path(folder) / "out.mp4"


class _Sound:
    """Feeds the tone to the AAC encoder a frame (1024 samples) at a time."""

    def __init__(self, samples: npt.NDArray[np.float32], stream: av.AudioStream) -> None:
        self.samples, self.stream, self.pos = samples, stream, 0
        self.frame_size = stream.codec_context.frame_size or 1024

    def encode_until(self, end: int | None) -> list[av.Packet[av.AudioStream]]:
        stop = len(self.samples) if end is None else min(end, len(self.samples))
        packets: list[av.Packet[av.AudioStream]] = []
        while self.pos < stop and (end is None or self.pos + self.frame_size <= stop):
            chunk = self.samples[self.pos : self.pos + self.frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, self.pos
            packets.extend(self.stream.encode(frame))
            self.pos += len(chunk)
        if end is None:
            packets.extend(self.stream.encode(None))
        return packets


def _clean(frame: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> None:
    """Paint the box with the median colour of the ring of pixels around it."""
    left, top, right, bottom = box
    height, width = frame.shape[:2]
    outer_top, outer_left = max(0, top - 2), max(0, left - 2)
    ring = frame[outer_top : min(height, bottom + 2), outer_left : min(width, right + 2)]
    around = np.ones(ring.shape[:2], dtype=bool)
    around[top - outer_top : bottom - outer_top, left - outer_left : right - outer_left] = False
    colour = np.median(ring[around], axis=0) if around.any() else np.zeros(3)
    frame[top:bottom, left:right] = colour.astype(np.uint8)


def frame_size(data: bytes) -> tuple[int, int]:
    """The picture size of a video, from its first decoded frame. Raises BadVideo."""
    try:
        with av.open(io.BytesIO(data), mode="r") as src:
            if not src.streams.video:
                raise BadVideo("the file has no video stream")
            for frame in src.decode(video=0):
                return frame.width, frame.height
    except av.FFmpegError as exc:
        raise BadVideo(exc.strerror or str(exc)) from None
    raise BadVideo("the video holds no frames")


def remove_watermark(data: bytes) -> bytes:
    """The same video with the watermark box painted out: the picture re-encoded, the sound
    copied as it is. Raises BadVideo when `data` is not a video with a picture."""
    try:
        return _remove_watermark(data)
    except av.FFmpegError as exc:
        raise BadVideo(exc.strerror or str(exc)) from None


def _remove_watermark(data: bytes) -> bytes:
    with _mp4_file() as path, av.open(io.BytesIO(data), mode="r") as src:
        if not src.streams.video:
            raise BadVideo("the file has no video stream")
        vin = src.streams.video[0]
        ain = src.streams.audio[0] if src.streams.audio else None
        width, height = vin.codec_context.width, vin.codec_context.height
        if width % 2 or height % 2:
            raise BadVideo(f"odd frame size {width}x{height}")
        box = watermark_box(width, height)
        with av.open(str(path), mode="w", format="mp4", options=_MUX_OPTIONS) as out:
            out.metadata["title"] = src.metadata.get("title", "")
            out.metadata["comment"] = MARKER
            rate = vin.average_rate or FPS
            vout = out.add_stream("libx264", rate=rate, options=_H264_OPTIONS)
            assert isinstance(vout, av.VideoStream)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            aout = out.add_stream_from_template(ain) if ain is not None else None
            streams = [s for s in (vin, ain) if s is not None]
            index = 0
            for packet in src.demux(streams):
                if packet.stream is vin:
                    # The last (empty) packet flushes the decoder's held-back frames.
                    for frame in packet.decode():
                        assert isinstance(frame, av.VideoFrame)
                        pixels = frame.to_ndarray(format="rgb24").astype(np.uint8, copy=False)
                        _clean(pixels, box)
                        picture = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                        picture.pts = index
                        index += 1
                        out.mux(vout.encode(picture))
                elif aout is not None and packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
            out.mux(vout.encode(None))
        if not index:
            raise BadVideo("the video holds no frames")
        return path.read_bytes()
