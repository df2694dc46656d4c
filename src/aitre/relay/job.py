"""One client request on its way through the relay."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aitre.accounts.auth import Caller


@dataclass(slots=True)
class Attempt:
    channel_id: int
    status: int
    latency_ms: float
    error: str = ""


@dataclass(slots=True)
class RelayJob:
    request_id: str
    caller: Caller
    endpoint: str  # e.g. "chat.completions": the usage-log name
    path: str  # upstream path under the API base, e.g. "/chat/completions"
    model: str
    body: dict[str, Any]
    stream: bool = False
    client_ip: str = ""
    started: float = field(default_factory=time.perf_counter)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def client_wants_usage(self) -> bool:
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    @property
    def wants_stream_usage_injected(self) -> bool:
        """Streams are billed from the upstream's usage chunk, so we ask for it when the client did not."""
        return self.stream and self.endpoint in ("chat.completions", "completions")

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0
