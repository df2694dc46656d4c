"""The video side of the engine (PyAV): open and check an input, frames as YUV 4:2:0 planes and
back, and the output: H.264 in mp4 at the input's size, frame rate and timestamps, with the
audio copied (or re-encoded to AAC when mp4 cannot carry it)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from aitre.watermark.errors import RemoverError
from aitre.watermark.job import AudioMode, EngineOptions, Limits

U8 = NDArray[np.uint8]
Planes = tuple[U8, U8, U8]

# audio codecs the mp4 muxer takes as they are; anything else is re-encoded to AAC
_MP4_AUDIO = {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG: full-range samples (0..255)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    duration: float
    frames: int  # expected (from the container; the decode counts the truth)


def open_input(src: Path, limits: Limits) -> Any:
    size = src.stat().st_size
    if size > limits.max_bytes:
        raise RemoverError("video_too_large", f"the video is {size} bytes; the limit is {limits.max_bytes}")
    try:
        return av.open(str(src), mode="r", options={"probesize": str(8 * 1024 * 1024)})
    except (av.error.FFmpegError, ValueError) as exc:
        raise RemoverError("not_a_video", f"the file is not a video ({exc})") from None


def check(container: Any, limits: Limits) -> VideoInfo:
    if not container.streams.video:
        raise RemoverError("not_a_video", "the file has no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise RemoverError("not_a_video", "the video stream has no picture size")
    if width * height > limits.max_pixels:
        raise RemoverError(
            "resolution_too_large", f"the video is {width}×{height}; the limit is {limits.max_pixels} pixels"
        )
    if width % 2 or height % 2:
        raise RemoverError("unsupported_video", f"odd picture sizes ({width}×{height}) are not supported")
    fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
    if fps <= 0:
        raise RemoverError("unsupported_video", "the video has no frame rate")
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    if duration > limits.max_seconds:
        raise RemoverError(
            "video_too_long", f"the video lasts {duration:.1f} s; the limit is {limits.max_seconds:g} s"
        )
    frames = stream.frames or round(duration * fps)
    return VideoInfo(width, height, fps, duration, frames)


def too_long(frame: av.VideoFrame, limits: Limits) -> None:
    """Containers can understate their duration: the decoded timestamps decide."""
    if frame.time is not None and frame.time > limits.max_seconds + 1:
        raise RemoverError("video_too_long", f"the video lasts more than {limits.max_seconds:g} s")


def planes_of(frame: av.VideoFrame) -> tuple[U8, Planes]:
    """The frame's samples as one writable array and its Y, U, V views."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    buf = np.asarray(frame.to_ndarray(), dtype=np.uint8)
    h, w = frame.height, frame.width
    # PyAV packs the planes back to back (H×W, then two (H/2)×(W/2)), as rows of W samples
    flat, n, c = buf.reshape(-1), h * w, (h // 2) * (w // 2)
    y = flat[:n].reshape(h, w)
    return buf, (y, flat[n : n + c].reshape(h // 2, w // 2), flat[n + c : n + 2 * c].reshape(h // 2, w // 2))


def is_full_range(frame: av.VideoFrame) -> bool:
    return frame.format.name.startswith("yuvj") or frame.color_range == _JPEG_RANGE


class Output:
    """The mp4 being written: video encoded from planes, audio packets copied or re-encoded."""

    def __init__(self, dst: Path, inp: Any, info: VideoInfo, options: EngineOptions) -> None:
        # faststart: the index goes first, so a browser starts playing before the whole file is in
        self.container: Any = av.open(str(dst), mode="w", format="mp4", options={"movflags": "+faststart"})
        src_video = inp.streams.video[0]
        self.video: Any = self.container.add_stream("libx264", rate=info.fps)
        self.video.width, self.video.height, self.video.pix_fmt = info.width, info.height, "yuv420p"
        self.video.time_base = src_video.time_base
        # one dict: `stream.options` and `codec_context.options` are the same, a second assignment
        # replaces the first. One thread per job: the pool's size is the number of cores it takes.
        self.video.codec_context.options = {"crf": str(options.crf), "preset": options.preset}
        self.video.codec_context.thread_count = 1
        self.in_audio: Any = inp.streams.audio[0] if inp.streams.audio else None
        self.audio: Any = None
        self.resampler: Any = None
        self.audio_mode: AudioMode = "none"
        if self.in_audio is not None:
            if self.in_audio.codec_context.name in _MP4_AUDIO:
                self.audio = self.container.add_stream_from_template(self.in_audio)
                self.audio_mode = "copied"
            else:
                rate = self.in_audio.codec_context.sample_rate or 48000
                self.audio = self.container.add_stream("aac", rate=rate, layout="stereo")
                self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
                self.audio_mode = "reencoded"
        self._colour_set = False

    def write_video(self, buf: U8, like: av.VideoFrame) -> None:
        if not self._colour_set:
            # keep the input's colour description, or players shift colours and brightness
            ctx = self.video.codec_context
            ctx.color_range = _JPEG_RANGE if is_full_range(like) else like.color_range
            ctx.colorspace, ctx.color_primaries, ctx.color_trc = (
                like.colorspace,
                like.color_primaries,
                like.color_trc,
            )
            self._colour_set = True
        frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
        frame.pts, frame.time_base = like.pts, like.time_base
        self.container.mux(self.video.encode(frame))

    def write_audio(self, packet: Any) -> None:
        if self.audio is None or packet.dts is None:
            return
        if self.resampler is None:
            packet.stream = self.audio
            self.container.mux(packet)
            return
        for frame in packet.decode():
            for out in self.resampler.resample(frame):
                self.container.mux(self.audio.encode(out))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.resampler is not None:
            for out in self.resampler.resample(None):
                self.container.mux(self.audio.encode(out))
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        self.container.close()
