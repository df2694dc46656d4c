"""Real audio for the simulator: a melody standing in for speech, encoded with PyAV (FFmpeg).

One note per word, pitched from the voice and the word, about 2.5 words a second. The input
text goes into the file's tags (ID3 for mp3 and aac, Vorbis comments for opus and flac, a
LIST/INFO chunk for wav), so that the transcription endpoint can give it back.

Everything here is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 24_000
WORDS_PER_SECOND = 2.5
# Marks files this module wrote: only then is their title the spoken text.
MARKER = "aitre simulator speech"
_FRAME = 1024

# response_format: (container, codec, Content-Type); wav and pcm are written directly.
FORMATS = {
    "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    "opus": ("ogg", "libopus", "audio/opus"),
    "aac": ("adts", "aac", "audio/aac"),
    "flac": ("flac", "flac", "audio/flac"),
    "wav": ("", "", "audio/wav"),
    "pcm": ("", "", "audio/pcm"),
}
# bitexact: no random Ogg serial numbers or version strings, so the same request gives the
# same bytes. write_id3v2: ADTS has no tags of its own; FFmpeg's reader takes a leading ID3.
_MUX_OPTIONS = {"adts": {"write_id3v2": "1"}}

Write = Callable[[bytes], None]


class BadAudio(ValueError):
    """The upload is not audio we can decode."""


def duration_for(text: str, speed: float) -> float:
    return max(0.5, len(text.split()) / WORDS_PER_SECOND / speed)


def synthesize(text: str, voice: str, speed: float) -> npt.NDArray[np.int16]:
    """Mono 16-bit samples at SAMPLE_RATE: one note per word, with short gaps between."""
    total = round(duration_for(text, speed) * SAMPLE_RATE)
    words = text.split() or [""]
    voice_hash = hashlib.sha256(voice.encode()).digest()
    base = 110.0 + voice_hash[0] % 120  # each voice its own register
    out = np.zeros(total, dtype=np.float32)
    edges = np.linspace(0, total, len(words) + 1).astype(int)
    for word, start, end in zip(words, edges[:-1], edges[1:], strict=True):
        step = hashlib.sha256(word.lower().encode()).digest()[0] % 8
        freq = base * 2 ** ((0, 2, 4, 7, 9, 12, 14, 16)[step] / 12)
        length = max(1, int((end - start) * 0.85))
        t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
        note = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
        ramp = min(length // 2, SAMPLE_RATE // 100)
        envelope = np.ones(length, dtype=np.float32)
        if ramp:
            envelope[:ramp] = np.linspace(0, 1, ramp)
            envelope[-ramp:] = np.linspace(1, 0, ramp)
        out[start : start + length] = note * envelope
    samples: npt.NDArray[np.int16] = (out * 0.25 * 32767).astype(np.int16)
    return samples


def _wav_header(n_samples: int, text: str) -> bytes:
    """RIFF header with exact sizes (known up front) and the text as INAM/ICMT tags."""
    info = b"INFO"
    for tag, value in ((b"INAM", text), (b"ICMT", MARKER)):
        raw = value.encode() + b"\x00"
        info += tag + struct.pack("<I", len(raw)) + raw + (b"\x00" if len(raw) % 2 else b"")
    data_size = n_samples * 2
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", len(info)) + info
    riff_size = 4 + len(chunks) + 8 + data_size
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)


def encode(samples: npt.NDArray[np.int16], fmt: str, text: str, write: Write) -> None:
    """Encode `samples` as `fmt`, handing bytes to `write` as the muxer produces them."""
    if fmt in ("wav", "pcm"):
        if fmt == "wav":
            write(_wav_header(len(samples), text))
        raw = samples.astype("<i2").tobytes()
        for i in range(0, len(raw), 64 * 1024):
            write(raw[i : i + 64 * 1024])
        return
    container, codec, _ = FORMATS[fmt]
    options = {"fflags": "+bitexact", **_MUX_OPTIONS.get(container, {})}
    with av.open(_Sink(write), mode="w", format=container, options=options) as out:
        out.metadata["title"] = text
        out.metadata["comment"] = MARKER
        stream = out.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        for pos in range(0, len(samples), _FRAME):
            frame = av.AudioFrame.from_ndarray(
                samples[pos : pos + _FRAME].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = pos
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


class _Sink:
    """A write-only, unseekable file for PyAV: muxers then write in stream order, never back."""

    def __init__(self, write: Write) -> None:
        self._write = write

    def write(self, data: bytes) -> int:
        self._write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


@dataclass(slots=True)
class Probe:
    duration: float
    text: str | None  # the spoken text, when this simulator made the file


def _tags(container: av.container.InputContainer) -> dict[str, str]:
    tags = {k.lower(): v for k, v in container.metadata.items()}
    for stream in container.streams.audio:
        tags.update({k.lower(): v for k, v in stream.metadata.items()})
    return tags


def probe(data: bytes) -> Probe:
    """Decode the whole upload (the only reliable duration for headerless streams)."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise BadAudio("the file has no audio stream")
            samples, rate = 0, 0
            for frame in container.decode(audio=0):
                samples += frame.samples
                rate = frame.sample_rate or rate
            tags = _tags(container)
    except av.FFmpegError as exc:
        raise BadAudio(exc.strerror or str(exc)) from None
    if not rate or not samples:
        raise BadAudio("the file holds no audio samples")
    text = tags.get("title") if tags.get("comment") == MARKER else None
    return Probe(samples / rate, text)
