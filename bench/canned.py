"""The fixed request and the canned upstream answers every target is measured with.

The upstream is not a model: it returns the same bytes every time, so the benchmark measures
what a gateway adds, not what an upstream takes. The shapes follow OpenAI's chat completions
(non-stream JSON; an SSE stream of `chat.completion.chunk` events, a usage-only chunk, then
`data: [DONE]`) closely enough that LiteLLM and aitre parse them as they would a real answer.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "gpt-4o-mini"
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
PROMPT = "Say this is a test"
# Twenty words, one per stream chunk; the non-stream answer is the same text.
WORDS = [
    "This", "is", "a", "test", "of", "the", "gateway", "benchmark:", "a", "canned",
    "answer", "of", "exactly", "twenty", "short", "words,", "sent", "all", "at", "once.",
]  # fmt: skip
STREAM_CHUNKS = len(WORDS)  # 20
USAGE = {"prompt_tokens": 12, "completion_tokens": STREAM_CHUNKS, "total_tokens": 12 + STREAM_CHUNKS}
_CREATED = 1_700_000_000


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def request_body(stream: bool) -> bytes:
    """What the load generators send. No `stream_options`: each gateway decides for itself
    whether to ask the upstream for usage."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return _dumps(body).encode()


def completion() -> str:
    return _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": _CREATED,
            "model": UPSTREAM_MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(WORDS), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None) -> str:
    obj: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": UPSTREAM_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }
    if usage is not None:
        obj["usage"] = usage
    return f"data: {_dumps(obj)}\n\n"


def stream() -> str:
    """20 content chunks (the last one carries finish_reason), a usage-only chunk, [DONE]."""
    events: list[str] = []
    for i, word in enumerate(WORDS):
        delta: dict[str, Any] = {"content": word if i == 0 else " " + word}
        if i == 0:
            delta["role"] = "assistant"
        finish = "stop" if i == STREAM_CHUNKS - 1 else None
        events.append(_chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], None))
    events.append(_chunk([], USAGE))
    events.append("data: [DONE]\n\n")
    return "".join(events)
