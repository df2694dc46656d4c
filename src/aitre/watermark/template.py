"""The mark to find and remove, loaded from an RGBA PNG and prepared at the scales searched.

A mark is what was alpha-blended over the video: per pixel, a colour and an opacity. Knowing both
exactly is what lets `fill.py` undo the blend instead of painting over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


class TemplateError(ValueError):
    pass


def default_mark_path() -> Path:
    return Path(str(resources.files("aitre.watermark") / "assets" / "sora_mark.png"))


@dataclass(frozen=True, slots=True)
class ScaledMark:
    """The mark at one size: its opacity and its colour in the video's Y, U and V (full size;
    `fill.py` subsamples chroma for the exact placement, which decides the 2×2 grid)."""

    scale: float
    alpha: F32  # H×W, 0..1
    luma: F32
    u: F32
    v: F32
    probe: F32  # what detection correlates against (see detect.py)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.alpha.shape
        return w, h


@dataclass(slots=True)
class MarkTemplate:
    rgba: NDArray[np.uint8]
    reference_short_side: int
    _cache: dict[tuple[float, bool], ScaledMark] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None, reference_short_side: int) -> MarkTemplate:
        path = path or default_mark_path()
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise TemplateError(f"cannot read the mark template {path}")
        if data.ndim != 3 or data.shape[2] != 4:
            raise TemplateError(f"the mark template {path} must be an RGBA PNG (it has no alpha channel)")
        rgba = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
        ys, xs = np.nonzero(rgba[..., 3])
        if len(xs) == 0:
            raise TemplateError(f"the mark template {path} is fully transparent")
        rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        return cls(np.ascontiguousarray(rgba), reference_short_side)

    def expected_scale(self, width: int, height: int) -> float:
        """The scale at which the mark is drawn on a video of this size (it grows with the video)."""
        return min(width, height) / self.reference_short_side

    def at(self, scale: float, full_range: bool) -> ScaledMark:
        key = (round(scale, 4), full_range)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = _scaled(self.rgba, scale, full_range)
        return cached


def _scaled(rgba: NDArray[np.uint8], scale: float, full_range: bool) -> ScaledMark:
    h0, w0 = rgba.shape[:2]
    w = max(2, round(w0 * scale))
    h = max(2, round(h0 * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(rgba, (w, h), interpolation=interp).astype(np.float32)
    alpha = img[..., 3] / 255.0
    y, u, v = _rgb_to_yuv(img[..., :3], full_range)
    return ScaledMark(scale, alpha, y, u, v, probe_of(alpha))


def probe_of(alpha: F32) -> F32:
    """Edges of the mark: detection works on high-passed images so a flat brightness offset or a
    smooth background gradient does not count, only the mark's shape."""
    return (alpha - cv2.GaussianBlur(alpha, (0, 0), 2.0)).astype(np.float32)


def _rgb_to_yuv(rgb: F32, full_range: bool) -> tuple[F32, F32, F32]:
    # BT.709; for the default white mark the result is the same in every matrix
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    u = (b - y) / 1.8556
    v = (r - y) / 1.5748
    if full_range:
        return y, u + 128.0, v + 128.0
    return 16.0 + y * 219.0 / 255.0, 128.0 + u * 224.0 / 255.0, 128.0 + v * 224.0 / 255.0
