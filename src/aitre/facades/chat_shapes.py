"""Chat completion objects and stream chunks for answers we compose ourselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


def chat_completion(
    completion_id: str, created: int, model: str, content: str, usage: dict[str, int] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


@dataclass(frozen=True, slots=True)
class chat_stream_chunks:
    completion_id: str
    created: int
    model: str

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def role(self, content: str = "") -> bytes:
        return self._event(
            [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": None}]
        )

    def content(self, text: str) -> bytes:
        return self._event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def finish(self, reason: str, usage: dict[str, int] | None = None) -> bytes:
        """The last choice chunk; `usage` on it when given (for clients that did not ask for
        OpenAI's separate usage chunk, whose empty `choices` trips naive ones)."""
        extra = {"usage": usage} if usage is not None else {}
        return self._event([{"index": 0, "delta": {}, "finish_reason": reason}], **extra)

    def usage(self, usage: dict[str, int]) -> bytes:
        return self._event([], usage=usage)
