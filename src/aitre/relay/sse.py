"""Server-sent events on the relay path: split a byte stream into whole events, and tap an
OpenAI chat/completions stream for usage without parsing every chunk.

Only whole events are forwarded, so a stream cut inside an event never hands the client half a
JSON object followed by our error event. Chunks are parsed only when they can carry usage (the
bytes say `"usage"` with a value) or, after the fact, when the upstream sent no usage at all and
the delivered text must be counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from aitre.relay.usage import Usage, usage_from_dict

DONE = b"data: [DONE]\n\n"
_TRANSCRIPT_CAP = 16 * 1024 * 1024


class EventSplitter:
    """Accumulates bytes and releases them up to the last complete event boundary."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        lf, crlf = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
        end = max(lf + 2 if lf != -1 else 0, crlf + 4 if crlf != -1 else 0)
        if end == 0:
            self._buf = buf
            return b""
        self._buf = buf[end:]
        return buf[:end]

    @property
    def pending(self) -> bytes:
        return self._buf


def iter_data(block: bytes) -> list[bytes]:
    """The `data:` payloads of the events in a block of whole events."""
    out: list[bytes] = []
    for line in block.splitlines():
        if line.startswith(b"data:"):
            out.append(line[5:].strip())
    return out


_USAGE_MARKS = (b'"usage":{', b'"usage": {')


def _first_mark(block: bytes) -> int:
    """Where the first event that needs a closer look (usage, [DONE]) can start; -1: none."""
    found = [i for i in (block.find(m) for m in (*_USAGE_MARKS, b"[DONE]")) if i != -1]
    if not found:
        return -1
    first = min(found)
    return max(block.rfind(b"\n\n", 0, first) + 2, block.rfind(b"\r\n\r\n", 0, first) + 4, 0)


def _finishes(data: bytes) -> bool:
    return b'"finish_reason":"' in data or b'"finish_reason": "' in data


def delta_text(chunk: dict[str, Any]) -> str:
    """The generated text in one chat or completions chunk: content, reasoning, tool arguments."""
    parts: list[str] = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for key in ("content", "reasoning_content", "refusal"):
            value = delta.get(key)
            if isinstance(value, str):
                parts.append(value)
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                parts.append(str(fn.get("name") or ""))
                parts.append(str(fn.get("arguments") or ""))
    return "".join(parts)


@dataclass(slots=True)
class StreamTap:
    """Watches the events of a chat/completions stream as they pass.

    `strip_usage_chunk`: we asked the upstream for usage on the client's behalf, so the usage-only
    chunk (empty `choices`) is billed from but not forwarded.
    """

    strip_usage_chunk: bool = False
    usage: Usage | None = None
    done: bool = False
    finished: bool = False
    events: int = 0
    _transcript: list[bytes] = field(default_factory=list)
    _transcript_bytes: int = 0

    def process(self, block: bytes) -> bytes:
        """Record a block of whole events; return the bytes to forward to the client.

        Content events are forwarded untouched; only the tail from the first event that carries
        usage or `[DONE]` is split and parsed (an upstream often sends a whole answer at once).
        """
        self.events += 1
        start = _first_mark(block)
        head, tail = (block, b"") if start == -1 else (block[:start], block[start:])
        if head and _finishes(head):
            self.finished = True
        if tail:
            block = head + self._process_slow(tail)
        self._keep(block)
        return block

    def _process_slow(self, block: bytes) -> bytes:
        out: list[bytes] = []
        for event in _split_events(block):
            payload = b"".join(iter_data(event))
            if payload == b"[DONE]":
                self.done = True
                out.append(event)
                continue
            if b'"usage"' in payload:
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    data = None
                if isinstance(data, dict):
                    usage = usage_from_dict(data.get("usage"))
                    if usage is not None:
                        self.usage = usage
                        if self.strip_usage_chunk and not data.get("choices"):
                            continue
            if _finishes(payload):
                self.finished = True
            out.append(event)
        return b"".join(out)

    def _keep(self, block: bytes) -> None:
        if self._transcript_bytes < _TRANSCRIPT_CAP:
            self._transcript.append(block)
            self._transcript_bytes += len(block)

    def delivered_text(self) -> str:
        """All generated text forwarded so far (parsed only when the upstream gave no usage)."""
        parts: list[str] = []
        for block in self._transcript:
            for payload in iter_data(block):
                if payload == b"[DONE]":
                    continue
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    parts.append(delta_text(data))
        return "".join(parts)


def _split_events(block: bytes) -> list[bytes]:
    events: list[bytes] = []
    start = 0
    n = len(block)
    while start < n:
        i = block.find(b"\n\n", start)
        j = block.find(b"\r\n\r\n", start)
        if i == -1 and j == -1:
            events.append(block[start:])
            break
        end = j + 4 if j != -1 and (i == -1 or j < i) else i + 2
        events.append(block[start:end])
        start = end
    return events
