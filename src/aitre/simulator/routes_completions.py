"""`POST /v1/completions`, OpenAI's legacy text completions: deterministic one-token words,
`max_tokens` (16 by default) cutting with `finish_reason: "length"`, `n`, `echo`, streaming."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator import catalog
from aitre.simulator.common import (
    bad_request,
    begin,
    json_answer,
    open_json,
    sim,
    sse,
    sse_response,
)
from aitre.simulator.text import reply_words
from aitre.tokenizer import Tokenizer

# davinci-002 and babbage-002 use cl100k_base, like gpt-3.5-turbo-instruct; count them all so.
_COUNT_AS = "gpt-3.5-turbo-instruct"


@dataclass(slots=True)
class Prompt:
    text: str
    tokens: int | None = None  # known when the prompt was sent as token ids


@dataclass(slots=True)
class Choice:
    index: int
    prompt: Prompt
    words: list[str]
    finish_reason: str
    echo: bool

    @property
    def text(self) -> str:
        return (self.prompt.text if self.echo else "") + "".join(self.words)


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def parse_prompts(value: Any) -> list[Prompt] | str:
    """OpenAI's four prompt forms: text, texts, token ids, lists of token ids (or an error)."""
    if isinstance(value, str):
        return [Prompt(value)]
    if _is_tokens(value):
        return [Prompt(" ".join(map(str, value)), len(value))]
    if isinstance(value, list) and value:
        if all(isinstance(p, str) for p in value):
            return [Prompt(p) for p in value]
        if all(_is_tokens(p) for p in value):
            return [Prompt(" ".join(map(str, p)), len(p)) for p in value]
    return "`prompt` must be a string, an array of strings, or an array of token arrays."


def _options(body: dict[str, Any]) -> tuple[int, int] | Response:
    max_tokens = body.get("max_tokens", 16)
    max_tokens = 16 if max_tokens is None else max_tokens
    if type(max_tokens) is not int or max_tokens < 0:
        return bad_request("`max_tokens` must be a non-negative integer.", "max_tokens")
    n = body.get("n", 1)
    n = 1 if n is None else n
    if type(n) is not int or not 1 <= n <= 128:
        return bad_request("`n` must be an integer between 1 and 128.", "n")
    return max_tokens, n


def make_choices(prompts: list[Prompt], model: str, n: int, max_tokens: int, echo: bool) -> list[Choice]:
    out = []
    for p_index, prompt in enumerate(prompts):
        for i in range(n):
            words, cut = reply_words(prompt.text, model, i, max_tokens)
            out.append(Choice(p_index * n + i, prompt, words, "length" if cut else "stop", echo))
    return out


def usage_for(tokenizer: Tokenizer, prompts: list[Prompt], choices: list[Choice]) -> dict[str, Any]:
    prompt = sum(p.tokens if p.tokens is not None else tokenizer.count(p.text, _COUNT_AS) for p in prompts)
    completion = sum(tokenizer.count("".join(c.words), _COUNT_AS) for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _generate(
    prompts: list[Prompt], model: str, n: int, max_tokens: int, echo: bool, tokenizer: Tokenizer | None
) -> tuple[list[Choice], dict[str, Any] | None]:
    """Choices and usage together, off the event loop: many prompts times `n` is real work."""
    choices = make_choices(prompts, model, n, max_tokens, echo)
    return choices, usage_for(tokenizer, prompts, choices) if tokenizer is not None else None


def _base(body: dict[str, Any], model: str) -> dict[str, Any]:
    return {
        "id": "cmpl-sim" + hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:20],
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
    }


def _chunks(
    base: dict[str, Any], choices: list[Choice], usage: dict[str, Any] | None
) -> list[tuple[bytes, bool]]:
    """Streamed pieces: each choice's words, then an empty text with its finish reason."""

    def chunk(index: int, text: str, finish: str | None) -> bytes:
        item: dict[str, Any] = {
            **base,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            item["usage"] = None
        return sse(item)

    pieces: list[tuple[bytes, bool]] = []
    for c in choices:
        texts = ([c.prompt.text] if c.echo else []) + c.words
        pieces += [(chunk(c.index, text, None), True) for text in texts]
        pieces.append((chunk(c.index, "", c.finish_reason), False))
    if usage is not None:
        pieces.append((sse({**base, "choices": [], "usage": usage}), False))
    return pieces


async def completions(request: Request) -> Response:
    opened = await open_json(request, catalog.COMPLETION_MODELS)
    if isinstance(opened, Response):
        return opened
    body, model = opened
    prompts = parse_prompts(body.get("prompt"))
    if isinstance(prompts, str):
        return bad_request(prompts, "prompt")
    options = _options(body)
    if isinstance(options, Response):
        return options
    max_tokens, n = options
    stream = body.get("stream") is True
    started = await begin(request, model, stream)
    if isinstance(started, Response):
        return started
    ev, fault = started
    echo = body.get("echo") is True
    tokenizer = None if fault.no_usage else sim(request).tokenizer
    choices, usage = await asyncio.to_thread(_generate, prompts, model, n, max_tokens, echo, tokenizer)
    base = _base(body, model)
    if stream:
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return sse_response(request, _chunks(base, choices, usage if include else None), fault, ev)
    answer = {
        **base,
        "choices": [
            {"text": c.text, "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
            for c in choices
        ],
    }
    if usage is not None:
        answer["usage"] = usage
    return json_answer(answer, fault, ev)
