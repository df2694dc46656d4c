"""The in-memory, decrypted view of a channel that the relay works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHANNEL_TYPES = ("openai", "bfl", "midjourney-proxy", "simulator", "videos", "chat-video", "local-remover")
# Types that reach no upstream: no base URL to give.
BUILT_IN_TYPES = ("simulator", "local-remover")


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
    # Derived once: the relay asks for these on every request.
    max_concurrency: int = field(init=False, default=0)
    _api_base: str = field(init=False, default="", repr=False)
    cache: dict[Any, Any] = field(init=False, default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.max_concurrency = int(self.config.get("max_concurrency", 0) or 0)
        base = self.base_url.rstrip("/")
        if self.type == "simulator" or urlsplit(base).path in ("", "/"):
            base += "/v1"
        self._api_base = base

    def serves(self, model: str) -> bool:
        return model in self.models or "*" in self.models

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)

    def allows_group(self, group: str) -> bool:
        """Channels may be kept for some user groups (`config.groups`); empty means everyone."""
        groups = self.config.get("groups")
        return not groups or group in groups

    def api_base(self) -> str:
        """The OpenAI-style base (`.../v1`): a bare host gets `/v1` appended."""
        return self._api_base

    def root_url(self) -> str:
        """The upstream's root, for protocols whose paths carry their own `/v1` (BFL)."""
        base = self.base_url.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def same_origin(self, url: str) -> bool:
        """Whether `url` is on this channel's host: only then may the channel's key go with it."""
        a, b = urlsplit(self.base_url), urlsplit(url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)
