"""The local `sora_remover` engine: finds a known watermark (by default an approximation of Sora's)
in a video, takes it out, and re-encodes the video with its audio, frame rate, size and length.

The gateway uses `WatermarkRemover` (built from the settings, owned by the app state):

    report = await remover.remove_watermark(src, dst, on_progress=...)

It raises `RemoverError` (its `code` says why; `api_error()` gives the client's answer), and
`RemoverBusy` when every worker is busy and the queue is full. See docs/watermark-remover.md.
"""

from aitre.watermark.errors import RemoverBusy, RemoverError
from aitre.watermark.job import EngineOptions, Limits, Report, Run
from aitre.watermark.runner import RemoverConfig, WatermarkRemover

__all__ = [
    "EngineOptions",
    "Limits",
    "RemoverBusy",
    "RemoverConfig",
    "RemoverError",
    "Report",
    "Run",
    "WatermarkRemover",
]
