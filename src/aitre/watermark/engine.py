"""One removal, start to end, in the calling (worker) process: three passes over the video.

1. detect: decode, find the mark in every frame (luma only), group frames into runs of one
   placement;
2. plates: decode again and keep, for each run, its box from the frame just before it starts and
   just after it ends (the mark was elsewhere then): the neighbouring-frame source for pixels that
   cannot be recovered by undoing the blend;
3. fill and encode: decode a third time, remove the mark from each frame, encode H.264, copy the
   audio.

Decoding is cheap next to encoding, so three decodes cost less than holding a clip's frames in
memory (a 20 s 1080p clip is 3 GB of raw frames).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av

from aitre.watermark.detect import Detector, Placement, Tracker
from aitre.watermark.errors import RemoverError
from aitre.watermark.fill import Filler, Plate
from aitre.watermark.job import AudioMode, EngineOptions, Limits, Report, Run
from aitre.watermark.media import Output, VideoInfo, check, is_full_range, open_input, planes_of, too_long
from aitre.watermark.template import MarkTemplate, TemplateError

Progress = Callable[[float], None]
# about the share of the job's time each pass takes (profiled at 720p: the encode dominates)
_DETECT, _PLATES = 0.2, 0.1


def remove(src: Path, dst: Path, options: EngineOptions, limits: Limits, progress: Progress) -> Report:
    started = time.monotonic()
    try:
        template = MarkTemplate.load(
            Path(options.mark_path) if options.mark_path else None, options.reference_short_side
        )
    except TemplateError as exc:
        raise RemoverError("remover_failed", str(exc)) from None
    try:
        report = _remove(src, dst, template, options, limits, progress)
    except av.error.FFmpegError as exc:
        raise RemoverError("unsupported_video", f"the video cannot be decoded ({exc})") from None
    report.seconds = time.monotonic() - started
    return report


def _remove(
    src: Path, dst: Path, template: MarkTemplate, options: EngineOptions, limits: Limits, progress: Progress
) -> Report:
    with open_input(src, limits) as inp:
        info = check(inp, limits)
        placements, full_range = _detect(inp, info, template, options, limits, _scaled(progress, 0, _DETECT))
    runs = _runs(placements, template, full_range)
    report = Report(
        width=info.width,
        height=info.height,
        frames=len(placements),
        fps=str(info.fps),
        duration=info.duration,
        audio="none",
        mark_found=bool(runs),
        frames_with_mark=sum(p is not None for p in placements),
        runs=runs,
    )
    if not runs:
        if options.when_no_mark == "fail":
            raise RemoverError("no_watermark_found", "no watermark was found in the video")
        shutil.copyfile(src, dst)
        with open_input(dst, limits) as copied:
            report.audio = "copied" if copied.streams.audio else "none"
        progress(1.0)
        return report
    filler = Filler(template, info.width, info.height, full_range, options.method)
    with open_input(src, limits) as inp:
        plates = _plates(inp, placements, filler, _scaled(progress, _DETECT, _DETECT + _PLATES))
    with open_input(src, limits) as inp:
        report.audio = _encode(
            inp,
            dst,
            info,
            options,
            limits,
            placements,
            filler,
            plates,
            _scaled(progress, _DETECT + _PLATES, 1.0),
        )
    report.frames_with_mark = sum(p is not None for p in placements)
    report.inverted_pixels = filler.stats.inverted
    report.neighbour_pixels = filler.stats.from_neighbours
    report.inpainted_pixels = filler.stats.inpainted
    progress(1.0)
    return report


def _detect(
    inp: Any,
    info: VideoInfo,
    template: MarkTemplate,
    options: EngineOptions,
    limits: Limits,
    progress: Progress,
) -> tuple[list[Placement | None], bool]:
    tracker = Tracker(Detector(template, info.width, info.height, options.threshold))
    full_range = False
    for index, frame in enumerate(inp.decode(video=0)):
        too_long(frame, limits)
        if index == 0:
            full_range = is_full_range(frame)
        _, (y, _, _) = planes_of(frame)
        tracker.step(y)
        progress(index / max(info.frames, 1))
    if not tracker.placements:
        raise RemoverError("not_a_video", "the video has no frames")
    return tracker.placements, full_range


def _runs(placements: list[Placement | None], template: MarkTemplate, full_range: bool) -> list[Run]:
    runs: list[Run] = []
    start = 0
    for i in range(1, len(placements) + 1):
        here = placements[start]
        if i < len(placements) and _same(placements[i], here):
            continue
        if here is not None:
            w, h = template.at(here.scale, full_range).size
            runs.append(Run(start, i - 1, here.x, here.y, w, h, round(here.score, 3)))
        start = i
    return runs


def _same(a: Placement | None, b: Placement | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_spot(b)


def _plates(
    inp: Any, placements: list[Placement | None], filler: Filler, progress: Progress
) -> dict[int, list[Plate]]:
    """For each frame index that starts a run: the plates its run may borrow from."""
    wanted: dict[int, list[int]] = {}  # source frame -> first frames of the runs that want it
    starts: dict[int, int] = {}  # run's first frame -> its last frame
    n = len(placements)
    i = 0
    while i < n:
        spot = placements[i]
        j = i
        while j + 1 < n and _same(placements[j + 1], spot):
            j += 1
        if spot is not None:
            starts[i] = j
            for source in (i - 1, j + 1):
                if 0 <= source < n:
                    wanted.setdefault(source, []).append(i)
        i = j + 1
    plates: dict[int, list[Plate]] = {first: [] for first in starts}
    last_wanted = max(wanted, default=-1)
    for index, frame in enumerate(inp.decode(video=0)):
        if index > last_wanted:
            break
        if index in wanted:
            _, planes = planes_of(frame)
            for first in wanted[index]:
                spot = placements[first]
                assert spot is not None
                box = filler.placed(spot).box
                plates[first].append(filler.plate(index, planes, box, placements[index]))
        progress(index / max(last_wanted, 1))
    return plates


def _encode(
    inp: Any,
    dst: Path,
    info: VideoInfo,
    options: EngineOptions,
    limits: Limits,
    placements: list[Placement | None],
    filler: Filler,
    plates: dict[int, list[Plate]],
    progress: Progress,
) -> AudioMode:
    with writing():
        out = Output(dst, inp, info, options)
    streams = [inp.streams.video[0]] + ([out.in_audio] if out.in_audio is not None else [])
    index = 0
    run_first = 0
    try:
        for packet in inp.demux(streams):
            if packet.stream.type == "audio":
                out.write_audio(packet)
                continue
            for frame in packet.decode():
                if index >= len(placements):
                    raise RemoverError("unsupported_video", "the video decoded differently the second time")
                buf, planes = planes_of(frame)
                spot = placements[index]
                if spot is not None:
                    if index == 0 or not _same(placements[index - 1], spot):
                        run_first = index
                    near = sorted(plates.get(run_first, []), key=lambda p: abs(p.frame - index))
                    filler.fill(planes, spot, near)
                with writing():
                    out.write_video(buf, frame)
                index += 1
                progress(index / len(placements))
        with writing():
            out.close()
    except BaseException:
        out.abort()
        raise
    return out.audio_mode


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Failing to write the output (a full disk, a bad folder) is our fault, not the video's."""
    try:
        yield
    except av.error.FFmpegError as exc:
        raise RemoverError("remover_failed", f"cannot write the cleaned video ({exc})") from None


def _scaled(progress: Progress, lo: float, hi: float) -> Progress:
    """`progress` for one pass: its 0..1 mapped into [lo, hi], never past 0.99 before the end."""

    def report(fraction: float) -> None:
        progress(min(0.99, lo + (hi - lo) * max(0.0, min(1.0, fraction))))

    return report
