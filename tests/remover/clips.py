"""Synthetic clips for the remover's tests and bench: a clean source, the same with the mark
alpha-blended on top (jumping between positions), and PSNR against the clean frames.

Frames are a pure function of their index, so the clean reference is regenerated exactly
instead of being decoded from a lossy file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from aitre.watermark.template import MarkTemplate

U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 360
    fps: int = 24
    seconds: float = 3.0
    audio: bool = True
    jump_every: float = 1.0  # seconds between the mark's jumps
    mark_scale: float | None = None  # default: the template's expected scale for this size

    @property
    def frames(self) -> int:
        return round(self.fps * self.seconds)


@dataclass(frozen=True)
class Overlay:
    x: int
    y: int
    alpha: NDArray[np.float32]  # H×W, 0..1, the mark's opacity at (x, y)

    def region(self) -> tuple[slice, slice]:
        h, w = self.alpha.shape
        return slice(self.y, self.y + h), slice(self.x, self.x + w)


class Scene:
    """A textured, partly moving picture: a static textured backdrop (where a neighbouring frame
    can fill in), a drifting gradient, moving shapes and moving text."""

    def __init__(self, spec: ClipSpec, seed: int = 7) -> None:
        self.spec = spec
        rng = np.random.default_rng(seed)
        h, w = spec.height, spec.width
        noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
        texture = cv2.GaussianBlur(noise, (0, 0), 1.2) * 25 + cv2.GaussianBlur(noise, (0, 0), 6) * 150
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.backdrop = np.clip(texture + 100 + 40 * np.sin(xx / 23.0)[..., None], 0, 255)
        self.xx, self.yy = xx, yy

    def frame(self, i: int) -> U8:
        s = self.spec
        t = i / s.fps
        img = self.backdrop.copy()
        # the right half moves: a gradient that drifts, over the static texture
        drift = 60 * np.sin((self.xx + 40 * t * s.fps / 4) / 37.0) * (self.xx > s.width / 2)
        img += drift[..., None] * np.array([1.0, 0.6, 0.3], np.float32)
        out = np.clip(img, 0, 255).astype(np.uint8)
        cx = int(s.width * (0.3 + 0.4 * (0.5 + 0.5 * math.sin(t * 1.7))))
        cy = int(s.height * (0.5 + 0.3 * math.cos(t * 1.3)))
        cv2.circle(out, (cx, cy), s.height // 7, (230, 60, 40), -1, cv2.LINE_AA)
        x0 = int((t * s.width / 3) % s.width)
        cv2.rectangle(out, (x0, s.height // 8), (x0 + s.width // 10, s.height // 4), (30, 200, 90), -1)
        cv2.putText(
            out,
            f"aitre {i:03d}",
            (int(s.width * 0.05 + 20 * t), int(s.height * 0.92)),
            cv2.FONT_HERSHEY_SIMPLEX,
            s.height / 400,
            (250, 250, 250),
            max(1, s.height // 200),
            cv2.LINE_AA,
        )
        return out


def overlays(spec: ClipSpec, template: MarkTemplate) -> list[Overlay]:
    """Where the mark sits in each frame: three corner-ish spots, jumping every `jump_every` s."""
    scale = spec.mark_scale or template.expected_scale(spec.width, spec.height)
    alpha = template.at(scale, full_range=False).alpha
    mh, mw = alpha.shape
    w, h = spec.width, spec.height
    spots = [
        (int(w * 0.04), int(h * 0.06)),
        (w - mw - int(w * 0.05), h - mh - int(h * 0.12)),
        (int(w * 0.06), h - mh - int(h * 0.30)),
    ]
    per = max(1, round(spec.jump_every * spec.fps))
    return [Overlay(*spots[(i // per) % len(spots)], alpha) for i in range(spec.frames)]


def blend(frame: U8, overlay: Overlay) -> U8:
    out = frame.astype(np.float32)
    ys, xs = overlay.region()
    a = overlay.alpha[..., None]
    out[ys, xs] = out[ys, xs] * (1 - a) + 255.0 * a
    return np.round(out).astype(np.uint8)


def write_clip(path: Path, spec: ClipSpec, frames: list[U8], crf: int = 18) -> None:
    """H.264 (yuv420p) in mp4, with a 440 Hz AAC tone as long as the video when `spec.audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
        video.codec_context.thread_count = 1
        audio = out.add_stream("aac", rate=48000, layout="stereo") if spec.audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            _write_tone(out, audio, spec.seconds)


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(rate * seconds)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, start
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


@dataclass
class MadeClip:
    spec: ClipSpec
    scene: Scene
    overlays: list[Overlay]
    clean: Path
    marked: Path


def make_clips(folder: Path, spec: ClipSpec, template: MarkTemplate) -> MadeClip:
    scene = Scene(spec)
    marks = overlays(spec, template)
    clean = [scene.frame(i) for i in range(spec.frames)]
    write_clip(folder / "clean.mp4", spec, clean)
    write_clip(folder / "marked.mp4", spec, [blend(f, o) for f, o in zip(clean, marks, strict=True)])
    return MadeClip(spec, scene, marks, folder / "clean.mp4", folder / "marked.mp4")


def decode_rgb(path: Path) -> list[U8]:
    with av.open(str(path)) as src:
        return [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]


def psnr(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass(frozen=True)
class Quality:
    mark_psnr: float  # inside the mark's footprint (alpha > 0), all frames pooled
    frame_psnr: float  # whole frames


def measure(clip: MadeClip, frames: list[U8]) -> Quality:
    """PSNR of decoded frames against the clean source: in the mark's footprint and overall."""
    region_err: list[NDArray[np.float64]] = []
    frame_mse = 0.0
    for i, got in enumerate(frames):
        clean = clip.scene.frame(i)
        o = clip.overlays[i]
        ys, xs = o.region()
        mask = o.alpha > 0
        diff = got[ys, xs][mask].astype(np.float64) - clean[ys, xs][mask].astype(np.float64)
        region_err.append(diff.ravel() ** 2)
        frame_mse += float(np.mean((got.astype(np.float64) - clean.astype(np.float64)) ** 2))
    mark_mse = float(np.mean(np.concatenate(region_err)))
    frame_mse /= len(frames)
    return Quality(_db(mark_mse), _db(frame_mse))


def _db(mse: float) -> float:
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)
