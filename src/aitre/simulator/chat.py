"""Simulated chat completions: deterministic text, real token counts, OpenAI's exact shapes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from aitre.relay.usage import count_prompt, prompt_text
from aitre.simulator.text import reply_words
from aitre.tokenizer import Tokenizer


@dataclass(slots=True)
class ChoiceText:
    index: int
    words: list[str]
    finish_reason: str
    tool_call: dict[str, Any] | None = None


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            return value
    return None


def _tool_call(body: dict[str, Any], seed: str) -> dict[str, Any] | None:
    """A call to the requested (or first) tool when the request forces one."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice in (None, "none", "auto"):
        return None
    fn: dict[str, Any] | None = None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        fn = next((t.get("function") for t in tools if (t.get("function") or {}).get("name") == wanted), None)
    if fn is None:
        fn = tools[0].get("function") if isinstance(tools[0], dict) else None
    if not isinstance(fn, dict):
        return None
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    args = {name: ("sim" if (spec or {}).get("type") == "string" else 1) for name, spec in props.items()}
    return {
        "id": "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24],
        "type": "function",
        "function": {"name": str(fn.get("name", "tool")), "arguments": orjson.dumps(args).decode()},
    }


def make_choices(body: dict[str, Any], model: str) -> list[ChoiceText]:
    prompt = prompt_text(body)
    n_value = body.get("n")
    n = n_value if isinstance(n_value, int) and n_value > 0 else 1
    limit = _max_tokens(body)
    out: list[ChoiceText] = []
    for i in range(n):
        call = _tool_call(body, f"{model}{i}{prompt}")
        if call is not None:
            out.append(ChoiceText(i, [], "tool_calls", call))
            continue
        words, cut = reply_words(prompt, model, i, limit)
        out.append(ChoiceText(i, words, "length" if cut else "stop"))
    return out


def usage_for(
    tokenizer: Tokenizer, body: dict[str, Any], model: str, choices: list[ChoiceText]
) -> dict[str, Any]:
    prompt_tokens = count_prompt(tokenizer, body, model)
    completion = 0
    for c in choices:
        completion += tokenizer.count("".join(c.words), model)
        if c.tool_call:
            fn = c.tool_call["function"]
            completion += tokenizer.count(fn["name"], model) + tokenizer.count(fn["arguments"], model)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_id(body: dict[str, Any]) -> str:
    return "chatcmpl-sim" + hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:20]


def chat_response(
    body: dict[str, Any], model: str, usage: dict[str, Any] | None, choices: list[ChoiceText]
) -> dict[str, Any]:
    out_choices = []
    for c in choices:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(c.words) or None, "refusal": None}
        if c.tool_call:
            message["tool_calls"] = [c.tool_call]
        out_choices.append(
            {"index": c.index, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
        )
    resp: dict[str, Any] = {
        "id": completion_id(body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
        "choices": out_choices,
    }
    if usage is not None:
        resp["usage"] = usage
    return resp


def chat_chunks(
    body: dict[str, Any], model: str, usage: dict[str, Any] | None, choices: list[ChoiceText]
) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed answer, in OpenAI's order: role, content pieces, finish, usage."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage is not None
    base = {
        "id": completion_id(body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
    }

    def chunk(choices_part: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        c = {**base, "choices": choices_part, **extra}
        if include_usage and "usage" not in extra:
            c["usage"] = None
        return c

    for c in choices:
        yield chunk(
            [
                {
                    "index": c.index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        )
        if c.tool_call:
            fn = c.tool_call["function"]
            head = {
                "index": 0,
                "id": c.tool_call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            yield chunk(
                [{"index": c.index, "delta": {"tool_calls": [head]}, "logprobs": None, "finish_reason": None}]
            )
            args = fn["arguments"]
            for i in range(0, len(args), 8):
                part = {"index": 0, "function": {"arguments": args[i : i + 8]}}
                yield chunk(
                    [
                        {
                            "index": c.index,
                            "delta": {"tool_calls": [part]},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
        for word in c.words:
            yield chunk(
                [{"index": c.index, "delta": {"content": word}, "logprobs": None, "finish_reason": None}]
            )
        yield chunk([{"index": c.index, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}])
    if include_usage:
        yield chunk([], usage=usage)
