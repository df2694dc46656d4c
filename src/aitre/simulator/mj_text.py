"""The words of the MJ simulator: fault markers in prompts, the `--ar` and `--zoom` parameters,
describe's four prompts and shorten's analysis, all deterministic."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from aitre.simulator.faults import Fault

TILE_AREA = 512 * 512  # pixels of one grid tile (a 2x2 grid of a square prompt is 1024x1024)
MAX_RATIO = 4.0
# Discord's keycap digits, as MJ numbers describe's and shorten's suggestions: 1️⃣ ... 5️⃣
KEYCAPS = tuple(f"{n}\ufe0f\u20e3" for n in range(1, 6))

_MARK = re.compile(r"--sim-([a-z-]+)((?:(?!\s--).)*)", re.IGNORECASE)
_AR = re.compile(r"--(?:ar|aspect)\s+(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_ZOOM = re.compile(r"--zoom\s+(\d+(?:\.\d+)?)", re.IGNORECASE)
_STOP = frozenset(("a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the"))
_STOP |= {"to", "very", "with"}


@dataclass(slots=True)
class Marks:
    """What a task should go through, from prompt markers and fault rules together."""

    fail: str | None = None
    banned: bool = False
    stuck: bool = False
    no_callback: bool = False
    queued: int = 0
    queue_full: bool = False

    def add_fault(self, fault: Fault) -> Marks:
        self.fail = self.fail if fault.mj_fail is None else fault.mj_fail
        self.banned |= fault.mj_banned
        self.stuck |= fault.mj_stuck
        self.no_callback |= fault.mj_no_callback
        self.queued = max(self.queued, fault.mj_queued)
        self.queue_full |= fault.mj_queue_full
        return self


def read_marks(prompt: str) -> Marks:
    """`--sim-fail <reason>`, `--sim-banned`, `--sim-stuck`, `--sim-no-callback`,
    `--sim-queued <n>`, `--sim-queue-full` anywhere in a prompt (an argument runs to the next
    ` --`); unknown `--sim-` words are left alone, as MJ would pass them on."""
    marks = Marks()
    for match in _MARK.finditer(prompt):
        name, arg = match.group(1).lower(), match.group(2).strip()
        if name == "fail":
            marks.fail = arg or "Simulated failure"
        elif name == "banned":
            marks.banned = True
        elif name == "stuck":
            marks.stuck = True
        elif name == "no-callback":
            marks.no_callback = True
        elif name == "queued":
            marks.queued = int(arg) if arg.isdigit() else 1
        elif name == "queue-full":
            marks.queue_full = True
    return marks


def fit_area(width: float, height: float, area: int = TILE_AREA) -> tuple[int, int]:
    """A size of about `area` pixels with the aspect of width:height (capped at 4:1), in
    multiples of 8 as MJ's outputs are."""
    ratio = min(MAX_RATIO, max(1 / MAX_RATIO, width / height))
    w = math.sqrt(area * ratio)
    return max(8, round(w / 8) * 8), max(8, round(w / ratio / 8) * 8)


def tile_size(prompt: str) -> tuple[int, int]:
    """One grid tile for a prompt: square unless it says `--ar W:H` (or `--aspect`)."""
    match = _AR.search(prompt)
    if not match or not float(match.group(2)) or not float(match.group(1)):
        return fit_area(1, 1)
    return fit_area(float(match.group(1)), float(match.group(2)))


def zoom_factor(prompt: str, default: float = 2.0) -> float:
    """Custom zoom's `--zoom X` (MJ takes 1 to 2)."""
    match = _ZOOM.search(prompt)
    return min(2.0, max(1.0, float(match.group(1)))) if match else default


def numbered(items: list[str]) -> str:
    """`1️⃣ first\n\n2️⃣ second...`, the layout of MJ's describe and shorten answers."""
    return "\n\n".join(f"{KEYCAPS[i]} {item}" for i, item in enumerate(items))


def pick(text: str, index: int) -> str | None:
    """The `index`-th (1-based) suggestion of a numbered answer, without its keycap."""
    cap = KEYCAPS[index - 1] if 1 <= index <= len(KEYCAPS) else None
    if cap is None:
        return None
    for line in text.splitlines():
        if line.startswith(cap):
            return line[len(cap) :].strip()
    return None


_SUBJECTS = (
    "a quiet harbour at dawn",
    "a mountain village in the clouds",
    "an abstract still life of glass and fruit",
    "a portrait of a weathered traveller",
    "a rain-soaked city street at night",
    "a sunlit forest clearing",
    "a lone lighthouse on a cliff",
    "a bustling market under lanterns",
)
_STYLES = (
    "watercolour wash",
    "thick oil paint",
    "clean digital illustration",
    "35mm film photograph",
    "flat vector poster",
    "ukiyo-e woodblock print",
    "charcoal sketch",
    "isometric 3d render",
)
_LIGHT = (
    "soft morning light",
    "dramatic rim lighting",
    "overcast diffuse light",
    "golden hour glow",
    "neon reflections",
    "candle-lit shadows",
)


def describe_prompts(digest: bytes, colour: str, width: int, height: int) -> list[str]:
    """Four prompts for an image: what the picture is about comes from its hash, its main colour
    and its aspect ratio from the picture itself."""
    g = math.gcd(width, height) or 1
    ar = f"{width // g}:{height // g}"
    prompts = []
    for i in range(4):
        subject = _SUBJECTS[(digest[i] + i) % len(_SUBJECTS)]
        style = _STYLES[(digest[4 + i] + i) % len(_STYLES)]
        light = _LIGHT[(digest[8 + i] + i) % len(_LIGHT)]
        prompts.append(f"{subject}, {colour} tones, {style}, {light} --ar {ar}")
    return prompts


def _split(prompt: str) -> tuple[str, str]:
    """The prompt text and its ` --parameters` tail."""
    at = prompt.find(" --")
    return (prompt, "") if at < 0 else (prompt[:at], prompt[at:])


def shorten(prompt: str) -> str:
    """MJ's /shorten answer: the prompt with its important tokens in bold and the filler struck
    out, then five ever shorter prompts."""
    text, params = _split(prompt)
    phrases = [p.strip() for p in text.split(",") if p.strip()] or [text.strip()]
    marked, cores = [], []
    for phrase in phrases:
        words = phrase.split()
        keep = [w for w in words if w.lower() not in _STOP]
        cores.append(" ".join(keep) or phrase)
        first = keep[0] if keep else None
        marked.append(
            " ".join(f"~~{w}~~" if w.lower() in _STOP else f"**{w}**" if w is first else w for w in words)
        )
    short = []
    for k in range(5):
        count = max(1, math.ceil(len(cores) * (5 - k) / 5))
        short.append(", ".join(cores[:count]) + params)
    return "## Important tokens\n" + ", ".join(marked) + "\n## Shortened prompts\n" + numbered(short)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
