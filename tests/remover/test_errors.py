"""What the remover refuses, and how: each a RemoverError with a code and an OpenAI-shaped
client answer; never an output file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aitre.watermark import EngineOptions, Limits, RemoverError, WatermarkRemover
from tests.remover.clips import MadeClip, Scene, decode_rgb


async def _refused(remover: WatermarkRemover, src: Path, tmp_path: Path, **kw: object) -> RemoverError:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(RemoverError) as refused:
        await remover.remove_watermark(src, out / "x.mp4", **kw)  # type: ignore[arg-type]
    assert list(out.iterdir()) == []
    return refused.value


async def test_not_a_video(make_remover: Callable[..., WatermarkRemover], tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("just some text, not a video\n" * 50)
    error = await _refused(make_remover(), text, tmp_path)
    assert error.code == "not_a_video" and error.client_fault
    body = error.api_error().body()["error"]
    assert error.api_error().status == 400
    assert body["code"] == "not_a_video" and body["type"] == "invalid_request_error" and body["message"]


async def test_audio_only_is_not_a_video(
    make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    import av

    from tests.remover.clips import _write_tone

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        _write_tone(out, out.add_stream("aac", rate=48000, layout="stereo"), 1.0)
    error = await _refused(make_remover(), path, tmp_path)
    assert error.code == "not_a_video" and "no video stream" in error.message


async def test_limits(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover()
    size = small_clip.marked.stat().st_size
    long = await _refused(remover, small_clip.marked, tmp_path, limits=Limits(max_seconds=1.5))
    assert long.code == "video_too_long" and "1.5" in long.message
    big = await _refused(remover, small_clip.marked, tmp_path, limits=Limits(max_bytes=size - 1))
    assert big.code == "video_too_large" and str(size - 1) in big.message
    wide = await _refused(remover, small_clip.marked, tmp_path, limits=Limits(max_pixels=480 * 270 - 1))
    assert wide.code == "resolution_too_large" and "480×270" in wide.message
    assert all(e.api_error().status == 400 for e in (long, big, wide))


async def test_no_mark_fails_by_default(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    error = await _refused(make_remover(), small_clip.clean, tmp_path)
    assert error.code == "no_watermark_found" and error.api_error().status == 422


async def test_no_mark_can_pass_the_video_through(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(options=EngineOptions(when_no_mark="passthrough"))
    report = await remover.remove_watermark(small_clip.clean, tmp_path / "same.mp4")
    assert not report.mark_found and report.runs == [] and report.frames == small_clip.spec.frames
    assert report.audio == "copied"
    assert (tmp_path / "same.mp4").read_bytes() == small_clip.clean.read_bytes()


async def test_an_unreadable_template_fails_the_job(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    flat = tmp_path / "flat.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(flat), np.full((20, 40, 3), 255, np.uint8))  # no alpha channel
    remover = make_remover(options=EngineOptions(mark_path=str(flat)))
    error = await _refused(remover, small_clip.marked, tmp_path)
    assert error.code == "remover_failed" and "alpha" in error.message
    assert not error.client_fault


async def test_odd_sizes_are_refused(make_remover: Callable[..., WatermarkRemover], tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "odd.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 101, 57, "yuv444p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((57, 101, 3), 90, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    error = await _refused(make_remover(), path, tmp_path)
    assert error.code == "unsupported_video" and "101×57" in error.message


def test_clips_are_what_the_tests_think(small_clip: MadeClip) -> None:
    """The fixtures themselves: the marked clip differs from the clean one only around the mark."""
    clean, marked = decode_rgb(small_clip.clean), decode_rgb(small_clip.marked)
    scene = Scene(small_clip.spec)
    assert len(clean) == len(marked) == small_clip.spec.frames
    o = small_clip.overlays[0]
    ys, xs = o.region()
    strong = o.alpha > 0.3
    assert (marked[0][ys, xs][strong].astype(int) - clean[0][ys, xs][strong].astype(int)).mean() > 30
    # away from the mark, both are the scene up to coding noise
    assert abs(marked[0][:, -100:].astype(int) - scene.frame(0)[:, -100:].astype(int)).mean() < 4
