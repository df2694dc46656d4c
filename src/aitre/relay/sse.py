"""Server-sent events on the relay path: split a byte stream into whole events, and tap an
OpenAI chat/completions stream for usage without parsing every chunk.

Only whole events are forwarded, so a stream cut inside an event never hands the client half a
JSON object followed by our error event. Chunks are parsed only when they can carry usage (the
bytes say `"usage"` with a value) or, after the fact, when the upstream sent no usage at all and
the delivered text must be counted.

Lines end with CRLF, LF or a lone CR, and an event ends with an empty line (the SSE spec): two
line ends in a row, in any mix. Everything here is bounded: an event larger than
`MAX_EVENT_BYTES` ends the stream (`EventTooLarge`), and the tap keeps at most
`TRANSCRIPT_BYTES` of a stream to count later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from aitre.relay.usage import Usage, usage_from_dict

DONE = b"data: [DONE]\n\n"
# One event's bytes at most. Chat chunks are a few hundred bytes; the largest events are
# streamed images (a partial image, base64, in one event: 2-4 MB at 1536x1024).
MAX_EVENT_BYTES = 8 * 1024 * 1024
# What a tap keeps of a stream in case the upstream sends no usage and the text must be counted
# (a chat chunk is ~200 bytes: some 5,000 chunks); past it, the rest is estimated.
TRANSCRIPT_BYTES = 1024 * 1024


class EventTooLarge(Exception):
    """The upstream sent more than the bound without ending an event."""


def _end_after(buf: bytes, i: int) -> int:
    """Where the event ends whose empty line is the line end that starts at `i + 1`."""
    return i + 3 if buf[i + 1 : i + 3] == b"\r\n" else i + 2


# An empty line is a line end right after another. A line ends with LF, or with a CR that no LF
# follows; so two line ends in a row show as one of these pairs (a CR after a CR cannot be the
# first half of a CRLF), and the LF of a CRLF that ends the empty line belongs to the event.
_CR_PAIRS = (b"\n\r", b"\r\r")


def last_event_end(buf: bytes, stop: int | None = None) -> int:
    """The end of the last whole event in `buf[:stop]`; 0: none.

    A CR at the very end may turn out to start a CRLF: the event ends before its LF, which then
    opens the next block as an empty line, which SSE ignores."""
    if stop is None:
        stop = len(buf)
    i = buf.rfind(b"\n\n", 0, stop)
    end = i + 2 if i != -1 else 0
    if buf.find(b"\r", 0, stop) != -1:
        for pair in _CR_PAIRS:
            j = buf.rfind(pair, max(end - 1, 0), stop)  # a pair before that cannot end an event later
            if j != -1:
                end = max(end, _end_after(buf, j))
    return end


def next_event_end(buf: bytes, start: int, cr: bool) -> int:
    """The end of the first whole event in `buf[start:]`; -1: none. `cr`: `buf` has a CR."""
    i = buf.find(b"\n\n", start)
    end = i + 2 if i != -1 else -1
    if cr:
        for pair in _CR_PAIRS:
            j = buf.find(pair, start, end if end != -1 else len(buf))
            if j != -1:
                found = _end_after(buf, j)
                end = found if end == -1 else min(end, found)
    return end


def split_events(block: bytes) -> list[bytes]:
    """A block of events as one bytes object per event (a last unended one included)."""
    events: list[bytes] = []
    start, n = 0, len(block)
    cr = b"\r" in block
    while start < n:
        end = next_event_end(block, start, cr)
        if end == -1:
            events.append(block[start:])
            break
        events.append(block[start:end])
        start = end
    return events


class EventSplitter:
    """Accumulates bytes and releases them up to the last complete event boundary.

    Each byte is looked at once and copied at most once (when a partial event is joined to the
    chunk that ends it), and no more than `limit` bytes wait for an event to end."""

    __slots__ = ("_parts", "_size", "limit")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._parts: list[bytes] = []  # no event ends in these
        self._size = 0
        self.limit = limit

    def feed(self, chunk: bytes) -> bytes:
        """The bytes up to the last event end so far (b"" if none). Raises EventTooLarge."""
        parts = self._parts
        if not chunk:
            return b""
        if not parts:
            end = last_event_end(chunk)
            if end == len(chunk):
                return chunk
            rest = chunk[end:] if end else chunk
            out = chunk[:end] if end else b""
        else:
            # An empty line may straddle the seam: look at the last byte waiting and the chunk.
            seam = parts[-1][-1:] + chunk[:2]
            end = last_event_end(chunk)
            if end == 0 and (seam[:2] in (b"\n\n", b"\n\r", b"\r\r")):
                end = _end_after(seam, 0) - 1
            if not end:
                parts.append(chunk)
                self._size += len(chunk)
                if self._size > self.limit:
                    raise EventTooLarge(f"upstream sent an event larger than {self.limit} bytes")
                return b""
            out = b"".join([*parts, memoryview(chunk)[:end]])
            rest = chunk[end:]
            parts.clear()
            self._size = 0
        if rest:
            self._parts = [rest]
            self._size = len(rest)
            if self._size > self.limit:
                raise EventTooLarge(f"upstream sent an event larger than {self.limit} bytes")
        return out

    @property
    def pending(self) -> bytes:
        """What waits for its event to end."""
        if len(self._parts) > 1:
            self._parts = [b"".join(self._parts)]
        return self._parts[0] if self._parts else b""


def iter_data(block: bytes) -> list[bytes]:
    """The `data:` lines' values in a block of events, line by line."""
    out: list[bytes] = []
    for line in block.splitlines():
        if line.startswith(b"data:"):
            out.append(line[5:].strip())
    return out


def event_data(event: bytes) -> bytes | None:
    """One event's data: its `data:` lines joined with LF, as the SSE spec has a client do (a
    JSON object may be spread over several); None if it has none (a comment, a keep-alive)."""
    lines = iter_data(event)
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else b"\n".join(lines)


_USAGE_MARKS = (b'"usage":{', b'"usage": {')


def _first_mark(block: bytes) -> int:
    """Where the first event that needs a closer look (usage, [DONE]) can start; -1: none."""
    found = [i for i in (block.find(m) for m in (*_USAGE_MARKS, b"[DONE]")) if i != -1]
    if not found:
        return -1
    return last_event_end(block, min(found))


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

    Until the upstream reports usage, the forwarded events are kept (up to `transcript_limit`
    bytes) so that the text can be counted if it never does; once it has, nothing more is kept.
    """

    strip_usage_chunk: bool = False
    usage: Usage | None = None
    done: bool = False
    finished: bool = False
    events: int = 0
    transcript_limit: int = TRANSCRIPT_BYTES
    _transcript: list[bytes] = field(default_factory=list)
    _kept: int = 0
    _unkept: int = 0  # bytes forwarded past the limit, not kept

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
        if self.usage is None:
            self._keep(block)
        return block

    def _process_slow(self, block: bytes) -> bytes:
        out: list[bytes] = []
        for event in split_events(block):
            payload = event_data(event)
            if payload is None:
                out.append(event)
                continue
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
                        self._transcript = []  # the text need not be counted now
                        if self.strip_usage_chunk and not data.get("choices"):
                            continue
            if _finishes(payload):
                self.finished = True
            out.append(event)
        return b"".join(out)

    def _keep(self, block: bytes) -> None:
        if self._kept < self.transcript_limit:
            self._transcript.append(block)
            self._kept += len(block)
        else:
            self._unkept += len(block)

    def delivered_text(self) -> str:
        """All generated text forwarded so far (parsed only when the upstream gave no usage).

        Past the transcript limit the text is estimated: the rest of the stream is taken to
        carry text as densely as what was kept (in bytes of events per character, so tokens
        scale with it), and stands in as that much more of the same text."""
        parts: list[str] = []
        for block in self._transcript:
            for event in split_events(block):
                payload = event_data(event)
                if payload is None or payload == b"[DONE]":
                    continue
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    parts.append(delta_text(data))
        text = "".join(parts)
        if self._unkept and text:
            more = len(text) * self._unkept // self._kept
            text += (text * (more // len(text) + 1))[:more]
        return text
