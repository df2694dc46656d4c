"""Channel type -> adapter. Adding a provider = one module plus one line here."""

from __future__ import annotations

from aitre.adapters.base import PassThroughAdapter
from aitre.adapters.openai_compat import OpenAICompatAdapter


def build_registry(simulator_base: str) -> dict[str, PassThroughAdapter]:
    return {
        "openai": OpenAICompatAdapter(),
        # The built-in simulator is an OpenAI-compatible upstream mounted on this very server.
        "simulator": OpenAICompatAdapter(base_override=simulator_base),
    }
