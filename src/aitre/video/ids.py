"""Video ids as OpenAI makes them: `video_` and 32 hex digits (aitre's own; the upstream's stays
with aitre)."""

from __future__ import annotations

import re
import secrets

_ID = re.compile(r"video_[0-9a-f]{32}")


def new_video_id() -> str:
    return f"video_{secrets.token_hex(16)}"


def is_video_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None
