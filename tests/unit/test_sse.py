"""Splitting SSE streams into whole events and tapping them for usage."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from aitre.relay.sse import EventSplitter, StreamTap

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
    assert tap.delivered_text() == "Hi there"


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
