"""Video tasks and the clock that moves them: `queued` for one step, `in_progress` for four with
the progress rising, then `completed` (or `failed`). Nothing runs in the background: the state is
worked out from the time elapsed whenever someone looks, so a task nobody polls costs nothing.

Prompt markers choose the ending: `--sim-fail` fails half-way (`video_generation_failed`),
`--sim-moderate` the same with `moderation_blocked`, `--sim-stuck` stays `in_progress` at 50%
forever. The settings (`POST /_sim/config`) are read when a task is made; a task keeps them.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aitre.simulator.files import FileStore
from aitre.simulator.video import Clip, render

RUNNING_STEPS = 4
HALF_WAY = 50  # where a failing task fails and a stuck one stops
CHAT_STYLES = ("quote", "reasoning")
_FAILURES = {
    "--sim-moderate": ("moderation_blocked", "Your request was blocked by moderation (simulated)."),
    "--sim-fail": ("video_generation_failed", "Video generation failed (simulated: the prompt asked)."),
}


@dataclass(slots=True)
class VideoSettings:
    step_seconds: float = 0.2  # one step of the clock: a task takes five
    any_size: bool = False  # accept any even WxH from 16 to 2048, not only OpenAI's sizes
    max_side: int = 0  # when set, render no side longer than this (the reported size stays)
    chat_style: str = "quote"  # how sora_video2 by chat reports progress: quote | reasoning

    def update(self, body: Mapping[str, Any]) -> None:
        """Apply the `video_*` keys of a `/_sim/config` body; ValueError (and no change) when one
        is invalid."""
        step = body.get("video_step_seconds", self.step_seconds)
        if isinstance(step, bool) or not isinstance(step, int | float) or not 0 <= step <= 3600:
            raise ValueError("`video_step_seconds` must be a number of seconds from 0 to 3600.")
        any_size = body.get("video_any_size", self.any_size)
        if not isinstance(any_size, bool):
            raise ValueError("`video_any_size` must be true or false.")
        max_side = body.get("video_max_side", self.max_side)
        if type(max_side) is not int or not (max_side == 0 or 16 <= max_side <= 4096):
            raise ValueError("`video_max_side` must be 0 (off) or an integer from 16 to 4096.")
        style = body.get("video_chat_style", self.chat_style)
        if style not in CHAT_STYLES:
            raise ValueError(f"`video_chat_style` must be one of: {', '.join(CHAT_STYLES)}.")
        self.step_seconds, self.any_size = float(step), any_size
        self.max_side, self.chat_style = max_side, style

    def as_dict(self) -> dict[str, Any]:
        return {
            "video_step_seconds": self.step_seconds,
            "video_any_size": self.any_size,
            "video_max_side": self.max_side,
            "video_chat_style": self.chat_style,
        }

    def render_size(self, width: int, height: int) -> tuple[int, int]:
        """The size frames are drawn at: as asked, or shrunk to `max_side` (sides kept even)."""
        longest = max(width, height)
        if not self.max_side or longest <= self.max_side:
            return width, height
        scale = self.max_side / longest
        return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass(frozen=True, slots=True)
class VideoFiles:
    """Where a finished video's assets are, in the simulator's file store."""

    video: str
    thumbnail: str
    spritesheet: str

    def name(self, variant: str) -> str:
        return {"video": self.video, "thumbnail": self.thumbnail, "spritesheet": self.spritesheet}[variant]


@dataclass(slots=True)
class Clock:
    """Where a task is, from the time since it started and the ending its prompt asked for."""

    step: float
    fate: str = "completed"  # completed | failed | stuck
    error: tuple[str, str] | None = None  # (code, message) when it fails
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def for_prompt(cls, prompt: str, step: float) -> Clock:
        """`--sim-stuck`, `--sim-moderate` and `--sim-fail` in the prompt choose the ending."""
        if "--sim-stuck" in prompt:
            return cls(step, "stuck")
        for marker, failure in _FAILURES.items():
            if marker in prompt:
                return cls(step, "failed", failure)
        return cls(step)

    @property
    def runtime(self) -> float:
        """Seconds from the start to the end (of a task that ends)."""
        return self.step * (
            1 + RUNNING_STEPS if self.fate == "completed" else 1 + RUNNING_STEPS * HALF_WAY / 100
        )

    def phase(self, now: float | None = None) -> tuple[str, int]:
        """(status, progress) at `now` (time.monotonic())."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        if self.step <= 0:
            running = 1.0
        elif elapsed < self.step:
            return "queued", 0
        else:
            running = (elapsed - self.step) / (self.step * RUNNING_STEPS)
        progress = min(99, int(100 * running))
        if self.fate == "stuck":
            return "in_progress", min(progress, HALF_WAY)
        if self.fate == "failed" and progress >= HALF_WAY:
            return "failed", HALF_WAY
        if running >= 1.0:
            return "completed", 100
        return "in_progress", progress

    def error_object(self) -> dict[str, str]:
        code, message = self.error or ("video_generation_failed", "Video generation failed.")
        return {"code": code, "message": message}


@dataclass(slots=True)
class VideoTask:
    id: str
    model: str
    prompt: str
    seconds: int
    width: int  # as asked: the `size` the API reports
    height: int
    clip: Clip  # what to render, at the render size
    clock: Clock
    created_at: int = field(default_factory=lambda: int(time.time()))
    remixed_from: str | None = None
    made: asyncio.Future[VideoFiles] | None = None

    def as_video(self) -> dict[str, Any]:
        """The OpenAI `Video` object."""
        status, progress = self.clock.phase()
        ended = self.created_at + int(self.clock.runtime) if status in ("completed", "failed") else None
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": status,
            "progress": progress,
            "created_at": self.created_at,
            "completed_at": ended if status == "completed" else None,
            "expires_at": ended + 3600 if status == "completed" and ended is not None else None,
            "seconds": str(self.seconds),
            "size": f"{self.width}x{self.height}",
            "prompt": self.prompt,
            "remixed_from_video_id": self.remixed_from,
            "error": self.clock.error_object() if status == "failed" else None,
        }

    async def files(self, store: FileStore) -> VideoFiles:
        """The rendered assets: made on first call, again if the store has dropped them. One
        render however many callers wait, and a caller who leaves does not stop it."""
        made = self.made
        if (
            made is not None
            and made.done()
            and (made.cancelled() or made.exception() or not _kept(store, made.result()))
        ):
            made = None
        if made is None:
            made = self.made = asyncio.ensure_future(_render(self.clip, store))
        return await asyncio.shield(made)


def _kept(store: FileStore, files: VideoFiles) -> bool:
    return all(store.get(name) is not None for name in (files.video, files.thumbnail, files.spritesheet))


async def _render(clip: Clip, store: FileStore) -> VideoFiles:
    made = await asyncio.to_thread(render, clip)
    names = (
        store.save(made.mp4, "mp4"),
        store.save(made.thumbnail, "webp"),
        store.save(made.spritesheet, "jpg"),
    )
    return VideoFiles(*names)


@dataclass(slots=True)
class VideoBook:
    """The `/v1/videos` tasks, oldest first; the oldest go when there are too many."""

    settings: VideoSettings = field(default_factory=VideoSettings)
    max_tasks: int = 512
    _tasks: collections.OrderedDict[str, VideoTask] = field(default_factory=collections.OrderedDict)

    def add(self, task: VideoTask) -> None:
        self._tasks[task.id] = task
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)

    def get(self, video_id: str) -> VideoTask | None:
        return self._tasks.get(video_id)

    def delete(self, video_id: str) -> VideoTask | None:
        return self._tasks.pop(video_id, None)

    def page(self, after: str | None, limit: int, newest_first: bool) -> tuple[list[VideoTask], bool]:
        """One page of tasks after the one with id `after` (KeyError if there is none)."""
        tasks = list(reversed(self._tasks.values())) if newest_first else list(self._tasks.values())
        start = 0
        if after:
            ids = [t.id for t in tasks]
            start = ids.index(after) + 1 if after in ids else -1
            if start < 0:
                raise KeyError(after)
        chosen = tasks[start : start + limit]
        return chosen, start + limit < len(tasks)
