"""Find the mark in each frame: normalised cross-correlation of the frame's edges (high-passed
luma) with the mark's edges, over the whole frame at a few scales, then tracked with hysteresis.

A white overlay raises brightness by `alpha * (white - background)`: its *shape* survives on any
background that is not already white, while a flat or slowly varying background is removed by
the high-pass. The mark sits still for seconds and then jumps, so a found placement is kept as
long as the correlation at that exact spot stays strong (one cheap check per frame), and the
whole frame is searched again only when it drops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from aitre.watermark.template import MarkTemplate, probe_of

F32 = NDArray[np.float32]
_SCALE_STEPS = (0.8, 0.9, 1.0, 1.12, 1.25)  # around the expected scale: marks are drawn near it
_SEARCH_SHORT_SIDE = 360  # full searches run on a frame shrunk to about this size
_KEEP_RATIO = 0.6  # a placement is kept while its score stays above 60% of its best in this run
_RESEARCH_EVERY = 6  # frames between full searches while no mark is visible


@dataclass(frozen=True, slots=True)
class Placement:
    x: int
    y: int
    scale: float
    score: float

    def same_spot(self, other: Placement) -> bool:
        return (self.x, self.y, self.scale) == (other.x, other.y, other.scale)


class Detector:
    """Searches one video's frames (luma planes) for the mark."""

    def __init__(self, template: MarkTemplate, width: int, height: int, threshold: float) -> None:
        self.template = template
        self.threshold = threshold
        self.width, self.height = width, height
        expected = template.expected_scale(width, height)
        self.factor = max(1, min(width, height) // _SEARCH_SHORT_SIDE)
        self.scales = [
            expected * step for step in _SCALE_STEPS if self._fits(template.at(expected * step, False).size)
        ]

    def _fits(self, size: tuple[int, int]) -> bool:
        w, h = size
        return w + 4 <= self.width and h + 4 <= self.height and min(w, h) // self.factor >= 6

    def search(self, luma: NDArray[np.uint8]) -> Placement | None:
        """The best placement over the whole frame, or None when no scale fits the frame."""
        if not self.scales:
            return None
        f = self.factor
        small = np.asarray(luma, dtype=np.float32) / 255.0
        if f > 1:
            small = np.asarray(
                cv2.resize(small, (self.width // f, self.height // f), interpolation=cv2.INTER_AREA),
                np.float32,
            )
        edges = probe_of(small)
        best: tuple[float, int, int, float] | None = None
        for scale in self.scales:
            probe = self.template.at(scale / f, False).probe
            if probe.shape[0] > edges.shape[0] or probe.shape[1] > edges.shape[1]:
                continue
            scores = cv2.matchTemplate(edges, probe, cv2.TM_CCOEFF_NORMED)
            _, score, _, (x, y) = cv2.minMaxLoc(scores)
            if best is None or score > best[0]:
                best = (score, x * f, y * f, scale)
        if best is None:
            return None
        _, x, y, scale = best
        return self._refine(luma, x, y, scale, radius=f + 1)

    def _refine(self, luma: NDArray[np.uint8], x: int, y: int, scale: float, radius: int) -> Placement:
        probe = self.template.at(scale, False).probe
        h, w = probe.shape
        x0, y0 = max(0, x - radius), max(0, y - radius)
        x1, y1 = min(self.width, x + w + radius), min(self.height, y + h + radius)
        edges = self._edges(luma, x0, y0, x1, y1)
        scores = cv2.matchTemplate(edges, probe, cv2.TM_CCOEFF_NORMED)
        _, score, _, (dx, dy) = cv2.minMaxLoc(scores)
        return Placement(x0 + dx, y0 + dy, scale, float(score))

    def score_at(self, luma: NDArray[np.uint8], spot: Placement) -> float:
        """The correlation at exactly this placement in this frame."""
        probe = self.template.at(spot.scale, False).probe
        h, w = probe.shape
        edges = self._edges(luma, spot.x, spot.y, spot.x + w, spot.y + h)
        return float(cv2.matchTemplate(edges, probe, cv2.TM_CCOEFF_NORMED)[0, 0])

    def _edges(self, luma: NDArray[np.uint8], x0: int, y0: int, x1: int, y1: int) -> F32:
        # high-pass a crop with a margin, so the blur sees real neighbours at the crop's edges
        m = 8
        cx0, cy0 = max(0, x0 - m), max(0, y0 - m)
        crop = luma[cy0 : min(self.height, y1 + m), cx0 : min(self.width, x1 + m)].astype(np.float32) / 255.0
        edges = probe_of(crop)
        return edges[y0 - cy0 : y0 - cy0 + (y1 - y0), x0 - cx0 : x0 - cx0 + (x1 - x0)]


class Tracker:
    """Per frame: the mark's placement or None, with hysteresis so the placement holds still.

    `placements[i]` is frame i's answer. While no mark is visible the whole frame is searched
    only every few frames; when a search finds one, the frames skipped since the last search are
    checked at that spot and given it if it is there.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.placements: list[Placement | None] = []
        self.current: Placement | None = None
        self.peak = 0.0
        self.skipped: list[tuple[int, NDArray[np.uint8]]] = []  # unsearched frames, newest last

    def keep_score(self) -> float:
        return max(self.detector.threshold, self.peak) * _KEEP_RATIO

    def step(self, luma: NDArray[np.uint8]) -> Placement | None:
        index = len(self.placements)
        found = self._step(index, luma)
        self.placements.append(found)
        return found

    def _step(self, index: int, luma: NDArray[np.uint8]) -> Placement | None:
        d = self.detector
        if self.current is not None:
            score = d.score_at(luma, self.current)
            if score >= self.keep_score():
                self.peak = max(self.peak, score)
                return self.current
            self.current = None
        elif 0 < len(self.skipped) < _RESEARCH_EVERY:
            self.skipped.append((index, luma.copy()))
            return None
        found = d.search(luma)
        if found is None or found.score < d.threshold:
            self.skipped = [(index, luma.copy())]
            return None
        self.current, self.peak = found, found.score
        self._backfill(found)
        return found

    def _backfill(self, spot: Placement) -> None:
        for index, luma in reversed(self.skipped):
            if self.placements[index] is not None or self.detector.score_at(luma, spot) < self.keep_score():
                break
            self.placements[index] = spot
        self.skipped = []
