"""The engine in-process (what a worker runs): marks at another scale, an operator's own mark,
audio that mp4 cannot carry, a video without audio; and the shipped template's provenance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np

from aitre.watermark import EngineOptions, Limits
from aitre.watermark.engine import remove
from aitre.watermark.markgen import draw_mark
from aitre.watermark.template import MarkTemplate, default_mark_path
from tests.remover.clips import ClipSpec, MadeClip, decode_rgb, make_clips, measure


def _remove(src: Path, dst: Path, **options: object) -> object:
    return remove(src, dst, EngineOptions(**options), Limits(), lambda _: None)  # type: ignore[arg-type]


def test_a_mark_drawn_smaller_than_expected_is_found(template: MarkTemplate, tmp_path: Path) -> None:
    spec = ClipSpec(width=480, height=270, seconds=1.5, jump_every=0.5, audio=False)
    spec = replace(spec, mark_scale=template.expected_scale(480, 270) * 0.9)
    clip = make_clips(tmp_path, spec, template)
    report = _remove(clip.marked, tmp_path / "out.mp4")
    spots = {(o.x, o.y) for o in clip.overlays}
    assert {(r.x, r.y) for r in report.runs} == spots  # type: ignore[attr-defined]
    assert report.audio == "none"  # type: ignore[attr-defined]
    quality = measure(clip, decode_rgb(tmp_path / "out.mp4"))
    assert quality.mark_psnr > 30, quality


def test_an_operators_own_mark(tmp_path: Path) -> None:
    """Detection is generic: a different RGBA mark (a ring and a bar, 70% opaque) is found and
    removed when AITRE_REMOVER_MARK_PATH points at it."""
    rgba = np.zeros((40, 90, 4), np.uint8)
    rgba[..., :3] = 255
    cv2.circle(rgba, (20, 20), 14, (255, 255, 255, 180), 3, cv2.LINE_AA)
    cv2.rectangle(rgba, (42, 14), (86, 26), (255, 255, 255, 180), -1)
    path = tmp_path / "mark.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    own = MarkTemplate.load(path, 360)
    clip = make_clips(
        tmp_path, ClipSpec(width=480, height=270, seconds=1.5, jump_every=0.5, audio=False), own
    )

    default = remove(
        clip.marked, tmp_path / "no.mp4", EngineOptions(when_no_mark="passthrough"), Limits(), print
    )
    assert not default.mark_found  # the Sora template does not see this mark

    report = remove(
        clip.marked,
        tmp_path / "out.mp4",
        EngineOptions(mark_path=str(path), reference_short_side=360),
        Limits(),
        lambda _: None,
    )
    assert report.frames_with_mark == clip.spec.frames
    quality = measure(clip, decode_rgb(tmp_path / "out.mp4"))
    marked = measure(clip, decode_rgb(clip.marked))
    # 70% opacity amplifies coding noise 3.3× where the blend is undone: a lower floor than Sora's
    assert quality.mark_psnr > 26 and quality.mark_psnr > marked.mark_psnr + 10, (quality, marked)


def test_audio_mp4_cannot_carry_is_reencoded_to_aac(clip: MadeClip, tmp_path: Path) -> None:
    src = tmp_path / "pcm.mkv"
    with av.open(str(clip.marked)) as inp, av.open(str(src), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=44100, layout="mono")
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
        t = np.arange(44100 * 3) / 44100
        samples = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))

    report = _remove(src, tmp_path / "out.mp4")
    assert report.audio == "reencoded"  # type: ignore[attr-defined]
    with av.open(str(tmp_path / "out.mp4")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 44100
        decoded = sum(f.samples for f in c.decode(audio=0))
    assert abs(decoded / 44100 - 3.0) < 0.1


def test_the_shipped_mark_is_the_generators_output() -> None:
    shipped = cv2.cvtColor(cv2.imread(str(default_mark_path()), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    drawn = draw_mark()
    assert shipped.shape == drawn.shape == (44, 120, 4)
    assert int(np.abs(shipped.astype(int) - drawn.astype(int)).max()) <= 1
    assert 100 < int(shipped[..., 3].max()) < 200  # semi-transparent


def test_the_quality_setting_reaches_the_encoder(small_clip: MadeClip, tmp_path: Path) -> None:
    fine = _remove(small_clip.marked, tmp_path / "fine.mp4", crf=12)
    coarse = _remove(small_clip.marked, tmp_path / "coarse.mp4", crf=36, preset="ultrafast")
    assert fine.frames == coarse.frames  # type: ignore[attr-defined]
    assert (tmp_path / "coarse.mp4").stat().st_size * 3 < (tmp_path / "fine.mp4").stat().st_size


def test_the_output_is_browser_friendly(small_clip: MadeClip, tmp_path: Path) -> None:
    """H.264 in mp4 with the index (moov) ahead of the media data (mdat): plays while it loads."""
    _remove(small_clip.marked, tmp_path / "out.mp4")
    head = (tmp_path / "out.mp4").read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")


def test_a_full_range_video_stays_full_range(template: MarkTemplate, tmp_path: Path) -> None:
    """JPEG-range samples (0..255, white is 255, not 235): the blend is undone against the right
    white, and the output says it is full range, or players would shift its levels."""
    from fractions import Fraction

    from tests.remover.clips import Scene, blend, overlays

    spec = ClipSpec(width=480, height=270, seconds=1.0, jump_every=0.5, audio=False)
    scene, marks = Scene(spec), overlays(spec, template)
    src = tmp_path / "full.mp4"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuvj420p"
        video.codec_context.options = {"crf": "18", "preset": "veryfast"}
        video.codec_context.color_range = 2
        for i in range(spec.frames):
            rgb = blend(scene.frame(i), marks[i])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
            frame.pts, frame.time_base = i, Fraction(1, spec.fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    clip = MadeClip(spec, scene, marks, src, src)

    _remove(src, tmp_path / "out.mp4")

    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).color_range == 2
    quality = measure(clip, decode_rgb(tmp_path / "out.mp4"))
    assert quality.mark_psnr > 32, quality
