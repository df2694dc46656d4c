"""The models the simulator answers for, by capability."""

from __future__ import annotations

CHAT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-5-mini",
    "gpt-3.5-turbo",
    "o4-mini",
)


def all_models() -> list[str]:
    return list(CHAT_MODELS)
