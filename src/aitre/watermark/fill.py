"""Take the mark out of one frame, in its YUV 4:2:0 planes.

Where the mark is known exactly the blend is undone: a frame shows `v = (1 - a) * x + a * m`
(`a` the mark's opacity, `m` its colour), so `x = (v - a * m) / (1 - a)` — every detail under a
semi-transparent mark comes back. That division multiplies coding noise by `1 / (1 - a)`, so
where the mark is nearly opaque, or where the result falls out of range (the template does not
match what was drawn there), the pixel is *unreliable* and is taken from a neighbouring frame in
which the mark was elsewhere (if that part of the picture did not move), or else painted in from
its surroundings (`cv2.inpaint`, Telea).

The `inpaint` method treats every pixel under the mark as unreliable: the baseline the bench
compares against.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from aitre.watermark.detect import Placement
from aitre.watermark.template import MarkTemplate

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]
Planes = tuple[U8, U8, U8]

OPAQUE = 0.85  # above this opacity, undoing the blend amplifies noise more than 6×: do not try
_STATIC_DIFF = 8.0  # mean |difference| (Y + U + V) under which a neighbouring frame shows the same picture
_STATIC_WINDOW = 9  # ... over the trusted pixels in a window this wide around each pixel
_SMOOTH, _SMOOTH_C = 0.7, 0.5  # Gaussian sigma over recovered luma / chroma pixels
_LEAN = 0.2  # k in the weight (1 - a)² / ((1 - a)² + k / d²) of the recovered pixel against the painted one
_MARGIN = 4  # pixels of context around the mark given to inpainting (even: keeps the chroma grid)


@dataclass(frozen=True, slots=True)
class Box:
    """A mark's footprint, widened to even coordinates so it covers whole chroma samples."""

    x0: int
    y0: int
    x1: int
    y1: int

    def luma(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def chroma(self) -> tuple[slice, slice]:
        return slice(self.y0 // 2, self.y1 // 2), slice(self.x0 // 2, self.x1 // 2)


@dataclass(frozen=True, slots=True)
class Placed:
    """A mark at one placement, as maps over its box: opacity and colour per plane."""

    box: Box
    alpha: F32
    luma: F32
    alpha_c: F32
    u: F32
    v: F32
    depth: F32  # distance to the nearest pixel outside the mark: how far inpainting must reach
    depth_c: F32

    @property
    def covered(self) -> NDArray[np.bool_]:
        return self.alpha > 0


@dataclass(slots=True)
class Plate:
    """A box's pixels from a frame where the mark was not on them (`valid`)."""

    frame: int
    planes: Planes
    valid: NDArray[np.bool_]


@dataclass(slots=True)
class FillStats:
    inverted: int = 0  # luma pixels recovered by undoing the blend
    from_neighbours: int = 0  # ... copied from a neighbouring frame
    inpainted: int = 0  # ... painted in from the surroundings


class Filler:
    def __init__(
        self, template: MarkTemplate, width: int, height: int, full_range: bool, method: str
    ) -> None:
        self.template = template
        self.width, self.height = width, height
        self.full_range = full_range
        self.invert = method == "invert"
        self._placed: dict[tuple[int, int, float], Placed] = {}
        self.stats = FillStats()

    def placed(self, spot: Placement) -> Placed:
        key = (spot.x, spot.y, spot.scale)
        found = self._placed.get(key)
        if found is None:
            found = self._placed[key] = self._place(spot)
        return found

    def _place(self, spot: Placement) -> Placed:
        mark = self.template.at(spot.scale, self.full_range)
        mw, mh = mark.size
        box = Box(
            max(0, (spot.x - _MARGIN) & ~1),
            max(0, (spot.y - _MARGIN) & ~1),
            min(self.width, (spot.x + mw + _MARGIN + 1) & ~1),
            min(self.height, (spot.y + mh + _MARGIN + 1) & ~1),
        )
        h, w = box.y1 - box.y0, box.x1 - box.x0
        alpha = np.zeros((h, w), np.float32)
        luma = np.zeros((h, w), np.float32)
        u = np.zeros((h, w), np.float32)
        v = np.zeros((h, w), np.float32)
        ox, oy = spot.x - box.x0, spot.y - box.y0
        # the part of the mark inside the frame (a placement near an edge may hang over it)
        cw, ch = min(mw, w - ox), min(mh, h - oy)
        alpha[oy : oy + ch, ox : ox + cw] = mark.alpha[:ch, :cw]
        luma[oy : oy + ch, ox : ox + cw] = mark.luma[:ch, :cw]
        u[oy : oy + ch, ox : ox + cw] = mark.u[:ch, :cw]
        v[oy : oy + ch, ox : ox + cw] = mark.v[:ch, :cw]
        half = (w // 2, h // 2)
        alpha_c = _f32(cv2.resize(alpha, half, interpolation=cv2.INTER_AREA))
        # a chroma sample averages 2×2 pixels, each blended with its own opacity and colour
        weight = np.maximum(alpha_c, 1e-6)
        u_c = _f32(cv2.resize(u * alpha, half, interpolation=cv2.INTER_AREA) / weight)
        v_c = _f32(cv2.resize(v * alpha, half, interpolation=cv2.INTER_AREA) / weight)
        return Placed(box, alpha, luma, alpha_c, u_c, v_c, _depth(alpha), _depth(alpha_c))

    def plate(self, frame: int, planes: Planes, box: Box, spot: Placement | None) -> Plate:
        """Copy `box` out of a frame whose own mark (if any) sits at `spot`."""
        y, u, v = planes
        crop = (y[box.luma()].copy(), u[box.chroma()].copy(), v[box.chroma()].copy())
        valid = np.ones(crop[0].shape, bool)
        if spot is not None:
            other = self.placed(spot)
            ob = other.box
            ix0, iy0, ix1, iy1 = (
                max(box.x0, ob.x0),
                max(box.y0, ob.y0),
                min(box.x1, ob.x1),
                min(box.y1, ob.y1),
            )
            if ix0 < ix1 and iy0 < iy1:
                mine = valid[iy0 - box.y0 : iy1 - box.y0, ix0 - box.x0 : ix1 - box.x0]
                theirs = other.covered[iy0 - ob.y0 : iy1 - ob.y0, ix0 - ob.x0 : ix1 - ob.x0]
                mine &= ~cv2.dilate(theirs.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        return Plate(frame, crop, valid)

    def fill(self, planes: Planes, spot: Placement, plates: list[Plate]) -> None:
        """Remove the mark at `spot` from `planes` in place; `plates` nearest first."""
        p = self.placed(spot)
        y, u, v = planes
        ys, xs = p.box.luma()
        cys, cxs = p.box.chroma()
        covered, covered_c = p.covered, p.alpha_c > 0
        painted = _painted(planes, p.box, covered)
        if self.invert:
            lo, hi = (0.0, 255.0) if self.full_range else (12.0, 239.0)
            est_y, bad = self._undo(y[ys, xs], p.alpha, p.luma, p.depth, painted[0], (lo, hi), _SMOOTH)
            full = (0.0, 255.0)
            est_u, bad_u = self._undo(u[cys, cxs], p.alpha_c, p.u, p.depth_c, painted[1], full, _SMOOTH_C)
            est_v, bad_v = self._undo(v[cys, cxs], p.alpha_c, p.v, p.depth_c, painted[2], full, _SMOOTH_C)
            bad |= np.repeat(np.repeat(bad_u | bad_v, 2, axis=0), 2, axis=1)
            bad &= covered
        else:
            (est_y, est_u, est_v), bad = painted, covered.copy()
        y[ys, xs] = np.where(covered, _u8(est_y), y[ys, xs])
        u[cys, cxs] = np.where(covered_c, _u8(est_u), u[cys, cxs])
        v[cys, cxs] = np.where(covered_c, _u8(est_v), v[cys, cxs])
        todo = self._borrow(planes, p, covered, ~covered | ~bad, plates)
        self.stats.inverted += int((todo & ~bad).sum())
        self.stats.inpainted += int((todo & bad).sum())

    @staticmethod
    def _undo(
        seen: U8,
        alpha: F32,
        colour: F32,
        depth: F32,
        painted: F32,
        valid: tuple[float, float],
        smooth: float,
    ) -> tuple[F32, NDArray[np.bool_]]:
        """The blend undone, smoothed, and mixed with the painted-in estimate by how much each
        is to be trusted; plus the pixels where undoing it cannot be trusted at all.

        Undoing the blend multiplies coding noise (worst at the mark's sharp edges) by 1 / (1 - a);
        painting in errs more the further a pixel is from the mark's outside (`depth`). So a light
        blur of the recovered pixels, then a weight of (1 - a)² / ((1 - a)² + k / depth²) for them
        against the painted ones: thin strokes lean on painting, wide opaque areas on undoing.
        """
        est, bad = _unblend(seen.astype(np.float32), alpha, colour, *valid)
        est = _f32(cv2.GaussianBlur(est, (0, 0), smooth))
        keep = (1.0 - alpha) ** 2
        weight = keep / (keep + _LEAN / (depth * depth))
        return np.where(bad, painted, weight * est + (1.0 - weight) * painted).astype(np.float32), bad

    def _borrow(
        self,
        planes: Planes,
        p: Placed,
        todo: NDArray[np.bool_],
        evidence: NDArray[np.bool_],
        plates: list[Plate],
    ) -> NDArray[np.bool_]:
        """Copy covered pixels from neighbouring frames that show the same picture here; returns
        the pixels still to do.

        A static plate beats undoing the blend: its pixels carry the coding noise of one frame,
        while undoing the blend multiplies this frame's by 1 / (1 - a). `evidence` (pixels the
        mark leaves alone, and those recovered by undoing the blend) says whether the picture
        moved.
        """
        y, u, v = planes
        ys, xs = p.box.luma()
        cys, cxs = p.box.chroma()
        todo = todo.copy()
        for plate in plates:
            near = _static_near((y[ys, xs], u[cys, cxs], v[cys, cxs]), plate, evidence)
            usable = todo & plate.valid & near
            if not usable.any():
                continue
            y[ys, xs][usable] = plate.planes[0][usable]
            usable_c = _blocks(usable).any(axis=(1, 3)) & _blocks(plate.valid).all(axis=(1, 3))
            u[cys, cxs][usable_c] = plate.planes[1][usable_c]
            v[cys, cxs][usable_c] = plate.planes[2][usable_c]
            self.stats.from_neighbours += int(usable.sum())
            todo &= ~usable
        return todo


def _painted(planes: Planes, box: Box, covered: NDArray[np.bool_]) -> tuple[F32, F32, F32]:
    """The box with the mark's footprint painted in from its surroundings (Telea)."""
    y, u, v = planes
    ys, xs = box.luma()
    cys, cxs = box.chroma()
    mask = cv2.dilate(_mask255(covered), np.ones((3, 3), np.uint8))
    mask_c = _mask255(np.asarray(_blocks(mask > 0).any(axis=(1, 3)), dtype=bool))
    return (
        _f32(cv2.inpaint(np.ascontiguousarray(y[ys, xs]), mask, 3, cv2.INPAINT_TELEA)),
        _f32(cv2.inpaint(np.ascontiguousarray(u[cys, cxs]), mask_c, 2, cv2.INPAINT_TELEA)),
        _f32(cv2.inpaint(np.ascontiguousarray(v[cys, cxs]), mask_c, 2, cv2.INPAINT_TELEA)),
    )


def _static_near(box: Planes, plate: Plate, evidence: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels around which the plate shows the same picture as this frame: the mean difference
    (luma and chroma: a green object can have the brightness of the grey behind it) over the
    trusted pixels of a window around each is small. A moving object that crosses one corner of
    the box disqualifies that corner, not the whole plate."""
    trusted = (evidence & plate.valid).astype(np.float32)
    diff = np.abs(box[0].astype(np.float32) - plate.planes[0].astype(np.float32))
    for mine, theirs in zip(box[1:], plate.planes[1:], strict=True):
        chroma = np.abs(mine.astype(np.float32) - theirs.astype(np.float32))
        diff += np.repeat(np.repeat(chroma, 2, axis=0), 2, axis=1)
    diff *= trusted
    window = (_STATIC_WINDOW, _STATIC_WINDOW)
    count = _f32(cv2.boxFilter(trusted, -1, window, normalize=False))
    total = _f32(cv2.boxFilter(diff, -1, window, normalize=False))
    return (count >= _STATIC_WINDOW) & (total <= _STATIC_DIFF * count)


def _depth(alpha: F32) -> F32:
    inside = np.where(alpha > 0, np.uint8(1), np.uint8(0)).astype(np.uint8)
    # the box has a margin around the mark, so every covered pixel has an outside to measure to
    return np.maximum(_f32(cv2.distanceTransform(inside, cv2.DIST_L2, 3)), 1.0)


def _mask255(mask: NDArray[np.bool_]) -> U8:
    return np.where(mask, np.uint8(255), np.uint8(0)).astype(np.uint8)


def _f32(values: object) -> F32:
    return np.asarray(values, dtype=np.float32)


def _u8(values: F32) -> U8:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _unblend(seen: F32, alpha: F32, colour: F32, lo: float, hi: float) -> tuple[F32, NDArray[np.bool_]]:
    """Undo `seen = (1 - a) * x + a * colour`; also the pixels where that cannot be trusted."""
    a = np.minimum(alpha, OPAQUE)
    est = (seen - a * colour) / (1.0 - a)
    bad = (alpha > OPAQUE) | (est < lo) | (est > hi)
    return np.where(alpha > 0, est, seen).astype(np.float32), bad


def _blocks(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The 2×2 luma blocks behind each chroma sample (boxes have even sizes)."""
    h, w = mask.shape
    return mask.reshape(h // 2, 2, w // 2, 2)
