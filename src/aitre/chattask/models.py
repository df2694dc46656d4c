"""Which chat model names are task-backed, and what each asks for.

A video alias names the video: the video model a `/v1/videos` upstream would be asked for, its
size and its length. The shipped aliases are the names relays sell Sora 2 by chat under (and the
simulator answers): portrait unless the name says landscape, 10 s unless it says 15 s. An
operator adds or replaces aliases with `AITRE_CHAT_VIDEO_MODELS`. A `chat-video` upstream is sent
the alias itself (through the channel's model mapping), since by chat the name is the order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aitre.config import Settings

VIDEO_KIND = "video"
REMOVER_KIND = "sora_remover"

_SIZE = re.compile(r"^([1-9]\d{1,3})x([1-9]\d{1,3})$")


@dataclass(frozen=True, slots=True)
class VideoModel:
    name: str  # what the client asked for (and what channels must serve)
    model: str  # the video model of a `/v1/videos` upstream (`sora-2`, `sora-2-pro`)
    size: str  # "WxH"
    seconds: str


def _shipped() -> dict[str, VideoModel]:
    found = {}
    for orientation, size in (("portrait", "720x1280"), ("landscape", "1280x720")):
        for suffix, seconds in (("", "10"), ("-15s", "15")):
            name = f"sora_video2-{orientation}{suffix}"
            found[name] = VideoModel(name, "sora-2", size, seconds)
    found["sora_video2"] = VideoModel("sora_video2", "sora-2", "720x1280", "10")
    return found


SHIPPED_VIDEO_MODELS = _shipped()


def parse_video_model(name: str, fields: dict[str, str]) -> VideoModel:
    """An operator's alias; ValueError names what is wrong."""
    if not name or len(name) > 128 or not name.isprintable():
        raise ValueError(f"chat video model {name[:40]!r}: a name is 1 to 128 printable characters")
    model = str(fields.get("model") or "sora-2")
    size = str(fields.get("size") or "720x1280")
    seconds = str(fields.get("seconds") or "10")
    if not _SIZE.match(size):
        raise ValueError(f"chat video model {name!r}: size {size!r} is not WxH")
    if not seconds.isdigit() or not 1 <= int(seconds) <= 600:
        raise ValueError(f"chat video model {name!r}: seconds {seconds!r} is not 1 to 600")
    if not model or len(model) > 128:
        raise ValueError(f"chat video model {name!r}: model must be 1 to 128 characters")
    return VideoModel(name, model, size, seconds)


def video_model(settings: Settings, name: str) -> VideoModel | None:
    """The alias `name`, the operator's first (checked at start: see `config.Settings`)."""
    fields = settings.chat_video_models.get(name)
    if fields is not None:
        return parse_video_model(name, fields)
    return SHIPPED_VIDEO_MODELS.get(name)


def is_remover(settings: Settings, name: str) -> bool:
    return name in settings.chat_remover_models


def is_chat_task(settings: Settings, name: str) -> bool:
    """Whether a chat request for `name` is answered by a task (a video or a removal): on every
    chat request, so dictionary and list lookups only."""
    return name in SHIPPED_VIDEO_MODELS or name in settings.chat_video_models or is_remover(settings, name)
