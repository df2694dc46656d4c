"""midjourney-proxy tasks in the simulator: the task record, its clock, its JSON and buttons.

A task's status is not stored but read off the clock (`phase`): one step SUBMITTED, then
IN_PROGRESS with the progress rising each step, then SUCCESS after `steps` steps of
`step_seconds` (FAILURE after two steps when it was told to fail; never done when stuck).
So ten thousand open tasks cost only their records, and nothing runs for a task nobody asked
to be called back about.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aitre.simulator.mj_images import Grid, Picture, Renderer, Scaled, Tile, owned_bytes

SUBMITTED, MODAL, IN_PROGRESS, SUCCESS, FAILURE = "SUBMITTED", "MODAL", "IN_PROGRESS", "SUCCESS", "FAILURE"
# The Discord guild/channel every simulated task "runs" in (echoed in `properties`).
INSTANCE_ID = "1300000000000000001"
FAIL_AFTER = 2  # steps before a task told to fail fails
TASK_BYTES = 1024  # rough size of a task record, for the book's memory bound


@dataclass(frozen=True, slots=True)
class Phase:
    status: str
    progress: str
    finished: float | None = None  # epoch seconds


@dataclass(slots=True, eq=False)
class MjTask:
    id: str
    action: str
    prompt: str
    prompt_en: str
    description: str
    base: str  # the simulator's own URL, for imageUrl (callbacks have no request to build it from)
    submitted: float
    step: float
    steps: int
    picture: Picture | None = None
    buttons: str = ""  # which button set a SUCCESS shows: grid | upscaled | upscaled2x | describe | shorten
    # In the picture's URL, like a Discord CDN signature: task ids are sequential, links must not be.
    image_token: str = field(default_factory=lambda: secrets.token_hex(12))
    state: str | None = None
    notify_hook: str | None = None
    custom_id: str | None = None
    bot_type: str = "MID_JOURNEY"
    final_prompt: str | None = None  # describe's and shorten's answer; else the English prompt
    fail_reason: str | None = None
    stuck: bool = False
    no_callback: bool = False
    modal: str = ""  # while the task waits for /mj/submit/modal: inpaint | zoom | imagine
    started: float = 0.0  # when the clock started (submit, or the modal's submit)
    hash: str = field(default_factory=lambda: str(uuid.uuid4()))
    driver: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.started = self.started or self.submitted

    def phase(self, now: float) -> Phase:
        if self.modal:
            return Phase(MODAL, "0%")
        # A hair of slack: a driver woken at a change must see the new phase, not float dust.
        k = int((now - self.started) / self.step + 1e-3) if self.step > 0 else self.steps
        if self.fail_reason is not None and k >= min(FAIL_AFTER, self.steps):
            return Phase(FAILURE, "", self.started + min(FAIL_AFTER, self.steps) * self.step)
        if self.stuck:
            k = min(k, self.steps - 1)
        if k <= 0:
            return Phase(SUBMITTED, "0%")
        if k < self.steps:
            return Phase(IN_PROGRESS, f"{k * 100 // self.steps}%")
        return Phase(SUCCESS, "100%", self.started + self.steps * self.step)

    def changes(self) -> list[float]:
        """When the phase changes, from the start of the clock to the last change."""
        if self.fail_reason is not None:
            last = min(FAIL_AFTER, self.steps)
        else:
            last = self.steps - 1 if self.stuck else self.steps
        return [self.started + k * self.step for k in range(last + 1)]

    def seed(self) -> str:
        return str(int.from_bytes(hashlib.sha256(self.id.encode()).digest()[:4], "big"))

    def message_id(self) -> str:
        return str(int.from_bytes(hashlib.sha256(self.hash.encode()).digest()[:7], "big") + 10**18)

    def as_json(self, now: float) -> dict[str, Any]:
        ph = self.phase(now)
        done = ph.status == SUCCESS
        return {
            "id": self.id,
            "action": self.action,
            "customId": self.custom_id,
            "botType": self.bot_type,
            "prompt": self.prompt,
            "promptEn": self.prompt_en,
            "description": self.description,
            "state": self.state,
            "submitTime": _ms(self.submitted),
            "startTime": None if self.modal else _ms(self.started),
            "finishTime": _ms(ph.finished) if ph.finished is not None else None,
            "imageUrl": self._image_url(ph),
            "status": ph.status,
            "progress": ph.progress,
            "failReason": self.fail_reason if ph.status == FAILURE else None,
            "buttons": buttons(self.buttons, self.hash) if done else [],
            "maskBase64": None,
            "properties": self._properties(done),
        }

    def _image_url(self, ph: Phase) -> str | None:
        if self.picture is None or self.modal:
            return None
        if ph.status == SUCCESS:
            return f"{self.base}/mj/image/{self.id}-{self.image_token}.png"
        if ph.status == IN_PROGRESS:
            # Discord links a blurred preview while the job runs; proxies pass it on.
            return f"{self.base}/mj/image/{self.id}-{self.image_token}.png?progress={ph.progress.rstrip('%')}"
        return None

    def _properties(self, done: bool) -> dict[str, Any]:
        props: dict[str, Any] = {
            "notifyHook": self.notify_hook,
            "finalPrompt": self.final_prompt if self.final_prompt is not None else self.prompt_en,
            "discordInstanceId": INSTANCE_ID,
            "discordChannelId": INSTANCE_ID,
            "botType": self.bot_type,
            "nonce": self.id,
        }
        if self.custom_id:
            props["custom_id"] = self.custom_id
        if done:
            props.update(messageId=self.message_id(), messageHash=self.hash, flags=0)
        return props


def _ms(t: float) -> int:
    return int(t * 1000)


def _button(custom_id: str, label: str = "", emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


def buttons(kind: str, h: str) -> list[dict[str, Any]]:
    """The buttons MJ puts under a message of this kind (Discord's component ids; v6 labels)."""
    if kind == "grid":
        ups = [_button(f"MJ::JOB::upsample::{i}::{h}", f"U{i}") for i in range(1, 5)]
        vs = [_button(f"MJ::JOB::variation::{i}::{h}", f"V{i}") for i in range(1, 5)]
        return [*ups, _button(f"MJ::JOB::reroll::0::{h}::SOLO", emoji="🔄"), *vs]
    if kind in ("upscaled", "upscaled2x"):
        more = [
            _button(f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)"),
            _button(f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO", "Upscale (Creative)"),
        ]
        return [
            *(more if kind == "upscaled" else []),
            _button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", "🪄"),
            _button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", "🪄"),
            _button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)", "🖌️"),
            _button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", "🔍"),
            _button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", "🔍"),
            _button(f"MJ::CustomZoom::{h}", "Custom Zoom", "🔍"),
            _button(f"MJ::JOB::pan_left::1::{h}::SOLO", emoji="⬅️"),
            _button(f"MJ::JOB::pan_right::1::{h}::SOLO", emoji="➡️"),
            _button(f"MJ::JOB::pan_up::1::{h}::SOLO", emoji="⬆️"),
            _button(f"MJ::JOB::pan_down::1::{h}::SOLO", emoji="⬇️"),
            _button(f"MJ::BOOKMARK::{h}", emoji="❤️"),
        ]
    if kind == "describe":
        picks = [_button(f"MJ::Job::PicReader::{i}", str(i)) for i in range(1, 5)]
        return [*picks, _button("MJ::Picread::Retry", emoji="🔄")]
    if kind == "shorten":
        return [_button(f"MJ::Job::PromptAnalyzer::{i}", str(i)) for i in range(1, 6)]
    return []


def grid_of(pic: Picture | None) -> Grid | None:
    return pic if isinstance(pic, Grid) else None


def upscaled(pic: Picture | None) -> bool:
    return isinstance(pic, Tile | Scaled)


@dataclass(slots=True)
class MjBook:
    """Tasks by id, the least recently used dropped first beyond `max_tasks` tasks or
    `max_bytes` (uploads held by their recipes included)."""

    max_tasks: int = 100_000
    max_bytes: int = 512 * 1024 * 1024
    _tasks: collections.OrderedDict[str, MjTask] = field(default_factory=collections.OrderedDict)
    _weights: dict[str, int] = field(default_factory=dict)
    _bytes: int = 0
    _last: int = 0

    def new_id(self, now: float) -> str:
        """16 digits, milliseconds then three random digits, like midjourney-proxy's ids; rising,
        so never one handed out before (also while its task is still being made)."""
        self._last = max(self._last + 1, _ms(now) * 1000 + secrets.randbelow(1000))
        return str(self._last)

    def add(self, task: MjTask) -> None:
        weight = TASK_BYTES + (owned_bytes(task.picture) if task.picture is not None else 0)
        self._bytes += weight - self._weights.get(task.id, 0)
        self._weights[task.id] = weight
        self._tasks[task.id] = task
        self._tasks.move_to_end(task.id)
        while len(self._tasks) > 1 and (len(self._tasks) > self.max_tasks or self._bytes > self.max_bytes):
            old, _ = self._tasks.popitem(last=False)
            self._bytes -= self._weights.pop(old)

    def get(self, task_id: str) -> MjTask | None:
        task = self._tasks.get(task_id)
        if task is not None:
            self._tasks.move_to_end(task_id)
        return task

    def __len__(self) -> int:
        return len(self._tasks)


@dataclass(slots=True)
class MjState:
    """The MJ side of one simulator: its tasks, its pictures, and its clock settings."""

    book: MjBook = field(default_factory=MjBook)
    renderer: Renderer = field(default_factory=Renderer)
    step_seconds: float = 0.2
    steps: int = 5
    # Strong references: the event loop keeps only weak ones to running tasks.
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    sending: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))  # callbacks in flight

    def now(self) -> float:
        return time.time()

    def settings(self) -> dict[str, Any]:
        return {"mj_step_seconds": self.step_seconds, "mj_steps": self.steps}

    def configure(self, body: dict[str, Any]) -> str | None:
        """Apply `mj_step_seconds` and `mj_steps` (new tasks only); an error message, or None."""
        step = body.get("mj_step_seconds", self.step_seconds)
        steps = body.get("mj_steps", self.steps)
        if isinstance(step, bool) or not isinstance(step, int | float) or not 0 <= step <= 3600:
            return "`mj_step_seconds` must be a number of seconds between 0 and 3600."
        if type(steps) is not int or not 1 <= steps <= 100:
            return "`mj_steps` must be an integer between 1 and 100."
        self.step_seconds, self.steps = float(step), steps
        return None
