"""One client request on its way through the relay."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Receive

from aitre.accounts.auth import Caller
from aitre.relay.usage import Usage

if TYPE_CHECKING:
    from aitre.billing.accountant import Charge
    from aitre.channels.model import ChannelInfo


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


FormField = tuple[str, "str | UploadedFile"]


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
    body: dict[str, Any]  # never changed in place: a changed body is a new dict (see `raw_body`)
    stream: bool = False
    client_ip: str = ""
    form: list[FormField] | None = None  # multipart requests: fields and files, in order
    binary_response: bool = False  # the answer is raw bytes (audio), streamed through as they come
    known_units: Usage = field(default_factory=Usage)  # measured before the call (audio seconds, chars)
    charge: Charge | None = None  # the open reservation, from admission until `finish`
    slot: int | None = None  # the channel whose in-flight count this request holds
    finished: bool = False
    receive: Receive | None = None  # the client connection's ASGI receive, to notice it leaving
    started: float = field(default_factory=time.perf_counter)
    attempts: list[Attempt] = field(default_factory=list)
    raw_body: tuple[bytes, dict[str, Any]] | None = None  # the client's bytes, and `body` as parsed from them
    trace_id: str = ""  # the client's own request id (`observe.trace`): sent upstream instead of ours
    upstream_ms: float = 0.0  # time spent waiting for upstreams: not the gateway's own overhead
    row: dict[str, Any] | None = None  # the usage-log row, once written (for the access line)

    def unchanged_body(self) -> bytes | None:
        """The client's bytes, while `body` is still the dict they were parsed into."""
        raw = self.raw_body
        return raw[0] if raw is not None and raw[1] is self.body else None

    @property
    def client_wants_usage(self) -> bool:
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    @property
    def wants_stream_usage_injected(self) -> bool:
        """Streams are billed from the upstream's usage chunk, so we ask for it when the client did not."""
        return self.stream and self.endpoint in ("chat.completions", "completions")

    def upstream_model(self, channel: ChannelInfo) -> str:
        """The model name sent upstream: the key's own override, else the channel's mapping."""
        return self.caller.model_mapping.get(self.model) or channel.upstream_model(self.model)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0
