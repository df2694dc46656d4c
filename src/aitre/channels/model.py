"""The in-memory, decrypted view of a channel that the relay works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHANNEL_TYPES = ("openai", "simulator")


@dataclass(slots=True)
class ChannelInfo:
    id: int
    name: str
    type: str
    base_url: str
    secret: str
    models: frozenset[str]
    model_mapping: dict[str, str]
    priority: int = 0
    weight: int = 1
    enabled: bool = True
    config: dict[str, Any] = field(default_factory=dict)

    def serves(self, model: str) -> bool:
        return model in self.models or "*" in self.models

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)

    def api_base(self) -> str:
        """The OpenAI-style base (`.../v1`): a bare host gets `/v1` appended."""
        base = self.base_url.rstrip("/")
        if urlsplit(base).path in ("", "/"):
            base += "/v1"
        return base
