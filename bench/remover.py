"""The local sora_remover engine on synthetic clips: PSNR inside the mark's footprint and over
whole frames (against the clean source), and speed, for both fill methods.

    .venv/bin/python -m bench.remover [--sizes 854x480,1280x720] [--seconds 4] [--keep DIR]

Clips come from the test suite's generator (tests/remover/clips.py): a clean source (static
texture, a drifting gradient, moving shapes and text, a 440 Hz AAC tone), the same with the
shipped mark alpha-blended on top and jumping between three spots every second. The engine runs
in this process exactly as in a worker (one OpenCV thread, one x264 thread). Speed is given in
frames per second of wall time and per CPU second (this process's user + system time), since on
a shared machine only the latter is stable. Writes bench/results/remover-<time>.json and
remover-latest.json; exits 1 when a floor (README) is missed with --strict.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
from tests.remover.clips import ClipSpec, MadeClip, decode_rgb, make_clips, measure

from aitre.watermark.engine import remove
from aitre.watermark.job import EngineOptions, Limits
from aitre.watermark.template import MarkTemplate

# the floors README.md commits to
MIN_MARK_PSNR = 32.0  # dB, `invert`, every clip
MIN_FRAME_PSNR = 33.0  # dB
MIN_CPU_FPS_720P = 20.0  # frames per CPU second, one worker, 1280×720
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    clip: str
    method: str
    frames: int
    mark_psnr: float
    frame_psnr: float
    wall_fps: float
    cpu_fps: float
    inverted: int
    neighbours: int
    inpainted: int


@dataclass
class Reference:
    clip: str
    marked_mark_psnr: float  # the watermarked input: what removal starts from
    reencoded_mark_psnr: float  # the clean source through the same codec: the ceiling
    reencoded_frame_psnr: float


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_clip(folder: Path, spec: ClipSpec, template: MarkTemplate) -> tuple[Reference, list[Row]]:
    name = f"{spec.width}x{spec.height}"
    clip = make_clips(folder, spec, template)
    marked, reencoded = measure(clip, decode_rgb(clip.marked)), measure(clip, decode_rgb(clip.clean))
    ref = Reference(name, marked.mark_psnr, reencoded.mark_psnr, reencoded.frame_psnr)
    rows = [_run(clip, folder / f"out-{method}.mp4", method) for method in ("invert", "inpaint")]
    return ref, rows


def _run(clip: MadeClip, out: Path, method: str) -> Row:
    wall, cpu = time.monotonic(), _cpu()
    report = remove(clip.marked, out, EngineOptions(method=method), Limits(max_seconds=600), lambda _: None)  # type: ignore[arg-type]
    wall, cpu = time.monotonic() - wall, _cpu() - cpu
    q = measure(clip, decode_rgb(out))
    return Row(
        f"{clip.spec.width}x{clip.spec.height}",
        method,
        report.frames,
        round(q.mark_psnr, 2),
        round(q.frame_psnr, 2),
        round(report.frames / wall, 1),
        round(report.frames / cpu, 1),
        report.inverted_pixels,
        report.neighbour_pixels,
        report.inpainted_pixels,
    )


def checks(rows: list[Row]) -> list[tuple[str, bool]]:
    invert = [r for r in rows if r.method == "invert"]
    out = [
        (f"mark PSNR ≥ {MIN_MARK_PSNR} dB ({r.clip}: {r.mark_psnr})", r.mark_psnr >= MIN_MARK_PSNR)
        for r in invert
    ]
    out += [
        (f"frame PSNR ≥ {MIN_FRAME_PSNR} dB ({r.clip}: {r.frame_psnr})", r.frame_psnr >= MIN_FRAME_PSNR)
        for r in invert
    ]
    out += [
        (f"speed ≥ {MIN_CPU_FPS_720P} frames/CPU-s at 720p ({r.cpu_fps})", r.cpu_fps >= MIN_CPU_FPS_720P)
        for r in invert
        if r.clip == "1280x720"
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="854x480,1280x720")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--keep", type=Path, help="keep the clips and outputs in this folder")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor is missed")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # as in a worker
    template = MarkTemplate.load(None, 720)
    work = args.keep or Path(tempfile.mkdtemp(prefix="aitre-remover-bench-"))
    refs: list[Reference] = []
    rows: list[Row] = []
    try:
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            folder = work / size
            folder.mkdir(parents=True, exist_ok=True)
            print(f"{size}: making the clips ...", flush=True)
            ref, clip_rows = run_clip(folder, ClipSpec(width=w, height=h, seconds=args.seconds), template)
            refs.append(ref)
            rows.extend(clip_rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    results = checks(rows)
    _print(refs, rows, results)
    _save({"refs": [asdict(r) for r in refs], "rows": [asdict(r) for r in rows], "checks": results})
    return 1 if args.strict and not all(ok for _, ok in results) else 0


def _print(refs: list[Reference], rows: list[Row], results: list[tuple[str, bool]]) -> None:
    print()
    head = f"{'clip':>10} {'method':>8} {'mark dB':>8} {'frame dB':>9} {'fps':>6} {'fps/CPU':>8}"
    print(head + "  pixels inverted/neighbours/painted")
    for r in rows:
        print(
            f"{r.clip:>10} {r.method:>8} {r.mark_psnr:>8.2f} {r.frame_psnr:>9.2f} {r.wall_fps:>6.1f} "
            f"{r.cpu_fps:>8.1f}  {r.inverted}/{r.neighbours}/{r.inpainted}"
        )
    print()
    for ref in refs:
        print(
            f"{ref.clip:>10}: watermarked input {ref.marked_mark_psnr:.2f} dB in the mark; the clean "
            f"source through the same codec (the ceiling) {ref.reencoded_mark_psnr:.2f} dB in the mark, "
            f"{ref.reencoded_frame_psnr:.2f} dB whole frame"
        )
    print()
    for label, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")


def _save(data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = json.dumps(data, indent=2)
    (RESULTS / f"remover-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    (RESULTS / "remover-latest.json").write_text(text)
    print(f"\nwritten: {RESULTS / 'remover-latest.json'}")


if __name__ == "__main__":
    sys.exit(main())
