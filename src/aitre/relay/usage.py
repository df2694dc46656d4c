"""Usage: what the upstream reported, or what we count when it reported nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from aitre.tokenizer import Tokenizer


@dataclass(slots=True)
class Usage:
    """What a request consumed, in every unit a price can be set in."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    seconds: float = 0.0  # audio in (transcription) or media out (video)
    characters: int = 0  # text in (speech)
    estimated: bool = False

    def merged(self, other: Usage) -> Usage:
        """Token counts from `other` (the upstream's report), other units from whichever has them."""
        measured = self.prompt_tokens or self.completion_tokens or self.cached_tokens or self.images
        if not (measured or self.seconds or self.characters):
            return other  # nothing measured before the call (most requests): the report as is
        return Usage(
            prompt_tokens=other.prompt_tokens or self.prompt_tokens,
            completion_tokens=other.completion_tokens or self.completion_tokens,
            cached_tokens=other.cached_tokens or self.cached_tokens,
            images=other.images or self.images,
            seconds=other.seconds or self.seconds,
            characters=other.characters or self.characters,
            estimated=other.estimated,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_from_dict(data: Any) -> Usage | None:
    """OpenAI's usage object (chat, completions, embeddings, images: input/output_tokens)."""
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens", data.get("input_tokens"))
    completion = data.get("completion_tokens", data.get("output_tokens", 0))
    if not isinstance(prompt, int):
        return None
    details = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion if isinstance(completion, int) else 0,
        cached_tokens=cached if isinstance(cached, int) else 0,
    )


def usage_from_body(body: bytes) -> Usage | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_from_dict(data.get("usage")) if isinstance(data, dict) else None


def completion_text(data: Any) -> str:
    """The generated text of a non-streamed chat or completions answer."""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            parts.append(_content_text(message.get("content")))
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_parts(body: dict[str, Any]) -> list[str]:
    """The texts a request sends, in order: each message's role and content, or the prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        for m in messages:
            if isinstance(m, dict):
                parts.append(str(m.get("role", "")))
                parts.append(_content_text(m.get("content")))
        return parts
    prompt = body.get("prompt", body.get("input", ""))
    if isinstance(prompt, list):
        return [p for p in prompt if isinstance(p, str)]
    return [prompt] if isinstance(prompt, str) else []


def prompt_text(body: dict[str, Any]) -> str:
    """The text a request sends, for counting: `prompt_parts` joined (written out: it is on
    every request's path)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        for m in messages:
            if isinstance(m, dict):
                parts.append(str(m.get("role", "")))
                parts.append(_content_text(m.get("content")))
        return "\n".join(parts)
    prompt = body.get("prompt", body.get("input", ""))
    if isinstance(prompt, list):
        return "\n".join(p for p in prompt if isinstance(p, str))
    return prompt if isinstance(prompt, str) else ""


def utf8_size(text: str) -> int:
    """The text's length in UTF-8 bytes: an upper bound of its tokens (a BPE token is at least a
    byte). ASCII text (the common case) is measured without being copied."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def prompt_size(body: dict[str, Any]) -> int:
    """`prompt_text(body)` in UTF-8 bytes, without joining it."""
    parts = prompt_parts(body)
    return sum(utf8_size(p) for p in parts) + max(len(parts) - 1, 0)


def chat_framing(body: dict[str, Any]) -> int:
    """OpenAI's chat framing: about 3 tokens per message plus 3 to prime the reply."""
    messages = body.get("messages")
    return 3 * len(messages) + 3 if isinstance(messages, list) else 0


def count_prompt(tokenizer: Tokenizer, body: dict[str, Any], model: str) -> int:
    """The prompt's exact token count. It takes about 50 µs per KB of ordinary text and several
    times that for adversarial text, so callers count long prompts off the event loop."""
    return tokenizer.count(prompt_text(body), model) + chat_framing(body)
