"""The local sora_remover on a generated watermarked clip, through the runner (worker process):
the output decodes with the same frame count, fps, size, duration and audio, and the mark's
region comes back close to the clean source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av

from aitre.watermark import WatermarkRemover
from tests.remover.clips import MadeClip, decode_rgb, measure

# the floor the README commits to (640×360 synthetic clip; the bench measures 480p and 720p)
MARK_PSNR_FLOOR = 32.0
FRAME_PSNR_FLOOR = 33.0


def _streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        info: dict[str, object] = {
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": video.average_rate,
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "duration": float(video.duration * video.time_base),
            "audio": audio.codec_context.name if audio else None,
            "audio_duration": float(audio.duration * audio.time_base) if audio else 0.0,
            "audio_rate": audio.codec_context.sample_rate if audio else 0,
        }
        info["frames"] = sum(1 for _ in c.decode(video=0))
    return info


async def test_removes_the_mark_and_keeps_the_video(
    clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover()
    seen: list[float] = []
    out = tmp_path / "clean.mp4"

    report = await remover.remove_watermark(clip.marked, out, on_progress=seen.append)

    before, after = _streams(clip.marked), _streams(out)
    assert after["frames"] == before["frames"] == clip.spec.frames
    assert after["fps"] == before["fps"] == clip.spec.fps
    assert after["size"] == before["size"] == (clip.spec.width, clip.spec.height)
    assert after["codec"] == "h264" and after["pix_fmt"] == "yuv420p"
    assert abs(float(after["duration"]) - clip.spec.seconds) < 0.05  # type: ignore[arg-type]
    assert after["audio"] == "aac" and after["audio_rate"] == before["audio_rate"]
    assert abs(float(after["audio_duration"]) - float(before["audio_duration"])) < 0.05  # type: ignore[arg-type]

    cleaned = measure(clip, decode_rgb(out))
    marked = measure(clip, decode_rgb(clip.marked))
    assert cleaned.mark_psnr > MARK_PSNR_FLOOR, cleaned
    assert cleaned.mark_psnr > marked.mark_psnr + 12, (cleaned, marked)
    assert cleaned.frame_psnr > FRAME_PSNR_FLOOR, cleaned

    assert report.mark_found and report.frames == clip.spec.frames
    assert report.frames_with_mark == clip.spec.frames
    spots = [(o.x, o.y) for o in clip.overlays]
    assert [(r.first, r.last, r.x, r.y) for r in report.runs] == [
        (0, 23, *spots[0]),
        (24, 47, *spots[24]),
        (48, 71, *spots[48]),
    ]
    assert report.audio == "copied" and report.fps == "24" and report.seconds > 0
    assert report.inverted_pixels > 0 and report.neighbour_pixels > 0
    assert seen and seen == sorted(seen) and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


async def test_inpaint_method_also_removes_it(
    clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    from aitre.watermark import EngineOptions

    remover = make_remover(options=EngineOptions(method="inpaint"))
    report = await remover.remove_watermark(clip.marked, tmp_path / "out.mp4")
    quality = measure(clip, decode_rgb(tmp_path / "out.mp4"))
    assert quality.mark_psnr > MARK_PSNR_FLOOR - 3, quality
    assert report.inverted_pixels == 0 and report.inpainted_pixels > 0
