"""Draw the default mark template: an approximation of the Sora 2 watermark (a white,
semi-transparent cloud-like logo beside the word "Sora"), written as an RGBA PNG.

The real mark cannot be shipped (no copy of it here); operators who have it point
`AITRE_REMOVER_MARK_PATH` at their own RGBA PNG. The shipped asset is this module's output:

    python -m aitre.watermark.markgen src/aitre/watermark/assets/sora_mark.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

_SUPER = 4  # drawn at 4x and shrunk with area averaging: smooth, anti-aliased alpha
OPACITY = 0.6  # peak alpha of the strokes: semi-transparent, as the real mark is


def draw_mark(width: int = 120, height: int = 44) -> NDArray[np.uint8]:
    """The template as an H×W×4 RGBA array (white, alpha up to OPACITY)."""
    w, h = width * _SUPER, height * _SUPER
    canvas: NDArray[np.uint8] = np.zeros((h, w), np.uint8)
    stroke = max(1, round(2.2 * _SUPER))
    # the cloud: a flat base and three bumps, drawn as one outline
    cy, r = h // 2 + h // 10, h // 4
    cx = h // 2 + _SUPER
    cloud = np.zeros_like(canvas)
    for dx, dy, rr in ((-r, 0, r), (0, -r // 2, int(r * 1.25)), (r, 0, r)):
        cv2.circle(cloud, (cx + dx, cy + dy), rr, (255,), -1, cv2.LINE_AA)
    cv2.rectangle(cloud, (cx - r, cy), (cx + r, cy + r), (255,), -1)
    inner = cv2.erode(cloud, np.ones((stroke, stroke), np.uint8))
    canvas = np.maximum(canvas, cv2.subtract(cloud, inner)).astype(np.uint8)
    # two eyes: the logo's face
    for ex in (cx - r // 3, cx + r // 3):
        cv2.circle(canvas, (ex, cy - r // 5), max(1, stroke // 2 + _SUPER // 2), (255,), -1, cv2.LINE_AA)
    # the word
    scale = h / 56.0
    cv2.putText(
        canvas,
        "Sora",
        (cx + 2 * r + 3 * _SUPER, cy + r // 2 + _SUPER),
        cv2.FONT_HERSHEY_DUPLEX,
        scale,
        (255,),
        max(1, round(scale * 2.2)),
        cv2.LINE_AA,
    )
    alpha = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    rgba = np.full((height, width, 4), 255, np.uint8)
    rgba[..., 3] = np.round(alpha * OPACITY).astype(np.uint8)
    return rgba


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m aitre.watermark.markgen OUT.png", file=sys.stderr)
        return 2
    out = Path(argv[0])
    rgba = draw_mark()
    bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(str(out), bgra):
        print(f"cannot write {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
