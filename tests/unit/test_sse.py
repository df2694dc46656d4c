"""Splitting SSE streams into whole events (any line ends, bounded) and tapping them for usage."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aitre.relay.sse import EventSplitter, EventTooLarge, StreamTap, event_data, split_events
from aitre.relay.streaming import UpstreamEvents
from aitre.relay.upstream import Timeouts, UpstreamFailure

EVENTS = [
    b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}],"usage":null}\n\n',
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True).map(sorted))
def test_splitter_releases_whole_events_whatever_the_chunking(cuts: list[int]) -> None:
    splitter = EventSplitter()
    out = b""
    bounds = [0, *cuts, len(STREAM)]
    for a, b in itertools.pairwise(bounds):
        released = splitter.feed(STREAM[a:b])
        assert released == b"" or released.endswith(b"\n\n")
        out += released
    assert out == STREAM
    assert splitter.pending == b""


def test_splitter_handles_crlf() -> None:
    s = EventSplitter()
    assert s.feed(b"data: 1\r\n\r\ndata: 2\r\n") == b"data: 1\r\n\r\n"
    assert s.feed(b"\r\n") == b"data: 2\r\n\r\n"


def test_tap_reads_usage_and_strips_the_usage_chunk_when_asked() -> None:
    tap = StreamTap(strip_usage_chunk=True)
    out = tap.process(STREAM)
    assert tap.usage is not None and (tap.usage.prompt_tokens, tap.usage.completion_tokens) == (5, 2)
    assert tap.done and tap.finished
    assert b'"choices":[]' not in out and out.endswith(b"data: [DONE]\n\n")
    assert tap._transcript == []  # the usage is known: no text is kept to count


def test_tap_keeps_the_usage_chunk_for_clients_that_asked() -> None:
    tap = StreamTap(strip_usage_chunk=False)
    assert tap.process(STREAM) == STREAM


def test_tap_counts_tool_call_arguments_and_legacy_text() -> None:
    tap = StreamTap()
    tap.process(
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\\"a\\""}}]}}]}\n\n'
        b'data: {"choices":[{"index":0,"text":"legacy"}]}\n\n'
    )
    assert tap.delivered_text() == 'f{"a"legacy'
    assert tap.usage is None and not tap.done


# -- line ends, bounds --------------------------------------------------------------------------

TERMINATORS = st.sampled_from([b"\n", b"\r\n", b"\r"])
FIELD = st.one_of(
    st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b).map(lambda b: b"data: " + b),
    st.just(b": keep-alive"),
    st.just(b"event: x"),
    st.just(b"data:[DONE]"),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """Events of a few lines with any mix of line ends (as bytes; how they parse is up to the
    bytes: a CR that ends a line and the LF of an empty line after it make one CRLF)."""
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        for _ in range(draw(st.integers(1, 3))):
            out += draw(FIELD) + draw(TERMINATORS)
        out += draw(TERMINATORS)
    return out + draw(st.sampled_from([b"", b"data: unfinished", b"data: x\r"]))


def reference(stream: bytes) -> list[bytes]:
    """The data of each event an SSE client dispatches (the spec's line rules, line by line)."""
    events: list[bytes] = []
    data: list[bytes] = []
    i, n = 0, len(stream)
    while i < n:
        j = i
        while j < n and stream[j] not in b"\r\n":
            j += 1
        if j == n:
            break  # an unfinished line
        line = stream[i:j]
        i = j + 2 if stream[j : j + 2] == b"\r\n" else j + 1
        if not line:
            if data:
                events.append(b"\n".join(data))
            data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].strip())
    return events


def released_events(blocks: list[bytes]) -> list[bytes]:
    return [p for block in blocks for e in split_events(block) if (p := event_data(e)) is not None]


@given(sse_streams(), st.data())
def test_splitter_releases_the_same_events_whatever_the_line_ends_and_chunking(
    stream: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12).map(sorted))
    splitter = EventSplitter()
    blocks = [splitter.feed(stream[a:b]) for a, b in itertools.pairwise([0, *cuts, len(stream)])]
    assert b"".join(blocks) + splitter.pending == stream
    assert released_events(blocks) == reference(stream)
    # ...and the tap, which splits what it is given again, finds the same events.
    whole = EventSplitter()
    assert released_events([whole.feed(stream)]) == reference(stream)


def test_events_ended_by_bare_crs_are_released() -> None:
    s = EventSplitter()
    assert s.feed(b"data: 1\r\rdata: 2\r") == b"data: 1\r\r"
    assert s.feed(b"\r") == b"data: 2\r\r"
    assert s.feed(b"data: 3\n\r\ndata: 4") == b"data: 3\n\r\n"
    assert s.pending == b"data: 4"


def test_an_event_larger_than_the_bound_is_refused_and_waiting_costs_no_copies() -> None:
    s = EventSplitter(limit=1 << 20)
    chunks = [b"data: " + b"x" * 4090 for _ in range(255)]
    for chunk in chunks:
        assert s.feed(chunk) == b""
    assert all(a is b for a, b in zip(s._parts, chunks, strict=True))  # held as given, not re-joined
    with pytest.raises(EventTooLarge, match=f"larger than {1 << 20} bytes"):
        s.feed(b"y" * 8192)
    # Under the bound, the wait ends with one join.
    s = EventSplitter(limit=1 << 20)
    for chunk in chunks:
        s.feed(chunk)
    assert s.feed(b"\n\n") == b"".join(chunks) + b"\n\n"


def test_a_multi_line_data_event_is_counted() -> None:
    tap = StreamTap()
    tap.process(
        b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"Hello"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":" world"}}]}\r\n\r\n'
    )
    assert tap.delivered_text() == "Hello world"


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n"])
def test_usage_and_done_are_read_whatever_the_line_ends(end: bytes) -> None:
    stream = b"".join(e.rstrip(b"\n") + end for e in EVENTS)
    tap = StreamTap(strip_usage_chunk=True)
    out = tap.process(stream)
    assert tap.usage is not None and tap.usage.completion_tokens == 2
    assert tap.done and tap.finished
    assert b'"choices":[]' not in out and out.endswith(b"data: [DONE]" + end)


def test_the_transcript_is_capped_and_the_rest_estimated() -> None:
    tap = StreamTap(transcript_limit=64 * 1024)
    event = b'data: {"choices":[{"index":0,"delta":{"content":"abcd"}}]}\n\n'
    block = event * 100
    for _ in range(100):  # ~570 KB forwarded, about 9 times the limit
        tap.process(block)
    assert tap._kept <= 64 * 1024 + len(block)
    text = tap.delivered_text()
    assert text.startswith("abcd" * 100)
    assert abs(len(text) - 4 * 100 * 100) <= 4 * 100  # as long as the whole text, give or take a block


def test_nothing_is_kept_once_the_usage_is_known() -> None:
    tap = StreamTap()
    tap.process(EVENTS[0] + EVENTS[3])
    assert tap.usage is not None
    for _ in range(10):
        tap.process(EVENTS[1])
    assert tap._transcript == [] and tap._kept == 0


class _Body:
    """An upstream body that arrives in the given pieces."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    async def readany(self, seconds: float) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


async def test_an_event_past_the_bound_ends_the_stream_as_an_upstream_failure() -> None:
    body = _Body(EVENTS[0], b"data: " + b"x" * 40_000, b"x" * 40_000, b"x" * 40_000)
    events = UpstreamEvents(body, StreamTap(), Timeouts(1, 1, 1), max_event=100_000)  # type: ignore[arg-type]
    assert await events.next_block() == EVENTS[0]
    with pytest.raises(UpstreamFailure, match="upstream sent an event larger than 100000 bytes") as caught:
        await events.next_block()
    assert caught.value.kind == "protocol"
