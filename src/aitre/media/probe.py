"""How long a piece of audio is, read from the file itself (PyAV), or why it cannot be read."""

from __future__ import annotations

import io


class UnreadableMedia(ValueError):
    pass


def audio_duration(data: bytes) -> float:
    """Seconds of audio in `data`. Raises UnreadableMedia when it is not decodable audio.

    Blocking (it decodes when the container has no duration): call it in a thread.
    """
    import av  # only transcription needs it; keeps PyAV out of a gateway that never probes audio

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise UnreadableMedia("the file has no audio stream")
            stream = streams[0]
            if container.duration:
                return float(container.duration) / av.time_base
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            samples = 0
            rate = stream.rate or 1
            for frame in container.decode(stream):
                samples += frame.samples
            return samples / rate
    except UnreadableMedia:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise UnreadableMedia(str(exc) or type(exc).__name__) from None
