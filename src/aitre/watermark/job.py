"""What crosses the process boundary: a job's options and limits in, its report out (as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Method = Literal["invert", "inpaint"]
NoMark = Literal["fail", "passthrough"]
AudioMode = Literal["copied", "reencoded", "none"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 100 * 1024 * 1024
    max_seconds: float = 60.0
    max_pixels: int = 1920 * 1080  # width × height of one frame


@dataclass(frozen=True, slots=True)
class EngineOptions:
    mark_path: str | None = None  # an RGBA PNG; None: the shipped approximation of Sora's mark
    reference_short_side: int = 720  # the video's shorter side at which the mark is drawn 1:1
    threshold: float = 0.6  # correlation a placement needs to count as the mark
    method: Method = "invert"
    when_no_mark: NoMark = "fail"
    crf: int = 18
    preset: str = "veryfast"


@dataclass(frozen=True, slots=True)
class Run:
    """Frames [first, last] during which the mark sat at one place."""

    first: int
    last: int
    x: int
    y: int
    width: int
    height: int
    score: float


@dataclass(slots=True)
class Report:
    width: int
    height: int
    frames: int
    fps: str  # exact, as a fraction: "24", "30000/1001"
    duration: float  # seconds of video
    audio: AudioMode
    mark_found: bool
    frames_with_mark: int
    runs: list[Run] = field(default_factory=list)
    inverted_pixels: int = 0
    neighbour_pixels: int = 0
    inpainted_pixels: int = 0
    seconds: float = 0.0  # wall time of the job in its worker

    @property
    def speed_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        runs = [Run(**r) for r in data.pop("runs", [])]
        return cls(**data, runs=runs)
