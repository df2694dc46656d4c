"""The official openai SDK, sync and async, against a running gateway and its built-in simulator."""

from __future__ import annotations

import openai
import pytest

from tests.support.clients import aclient, client
from tests.support.processes import Gateway

MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def test_non_stream_returns_completion_with_usage(gateway: Gateway) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "This is a test!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 13  # OpenAI's own count for this prompt
    assert resp.usage.completion_tokens == 5
    rid = raw.headers["x-request-id"]
    row = gateway.wait_log(rid)
    assert row["status_code"] == 200
    assert row["model"] == "gpt-4o-mini"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (13, 5)
    assert row["user_id"] is not None and row["token_id"] is not None and row["channel_id"] is not None
    assert row["latency_ms"] > 0


def test_stream_yields_chunks_and_no_usage_chunk_unless_asked(gateway: Gateway) -> None:
    with client(gateway).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me a story"}], stream=True
    ) as raw:
        rid = raw.headers["x-request-id"]
        chunks = list(raw.parse())
    assert len(chunks) > 3
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask for it"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text and chunks[-1].choices[0].finish_reason == "stop"
    row = gateway.wait_log(rid)
    assert row["stream"] == 1 and row["status_code"] == 200
    assert row["completion_tokens"] == len([c for c in chunks if c.choices[0].delta.content])
    assert row["usage_estimated"] == 0  # taken from the upstream's usage chunk


def test_stream_with_include_usage(gateway: Gateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    content = [c for c in chunks[:-1] if c.choices and c.choices[0].delta.content]
    assert last.usage.completion_tokens == len(content)


def test_same_prompt_gives_same_text_stream_and_not(gateway: Gateway) -> None:
    c = client(gateway)
    msgs = [{"role": "user", "content": "Describe the sea"}]
    full = c.chat.completions.create(model="gpt-4o-mini", messages=msgs).choices[0].message.content
    streamed = "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True)
    )
    assert full == streamed


def test_models_list(gateway: Gateway) -> None:
    models = client(gateway).models.list()
    ids = [m.id for m in models.data]
    assert "gpt-4o-mini" in ids
    assert all(m.object == "model" for m in models.data)
    assert client(gateway).models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_bad_key_is_401(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        client(gateway, key="sk-not-a-real-key").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"


def test_unknown_model_is_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client(gateway).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert exc.value.code == "model_not_found"
    assert exc.value.param == "model"


def test_tool_call_passes_through_stream_and_not(gateway: Gateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    c = client(gateway)
    resp = c.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=tools, tool_choice="required"
    )
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"sim"}'
    args = ""
    for ch in c.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=tools, tool_choice="required", stream=True
    ):
        for tc in ch.choices[0].delta.tool_calls or []:
            args += tc.function.arguments or ""
    assert args == '{"city":"sim"}'


async def test_async_non_stream(gateway: Gateway) -> None:
    resp = await aclient(gateway).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices[0].message.content == "This is a test!"


async def test_async_stream_with_usage(gateway: Gateway) -> None:
    stream = await aclient(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "This is a test!"
    assert usage is not None and usage.completion_tokens == 5


async def test_async_models_bad_key_unknown_model(gateway: Gateway) -> None:
    c = aclient(gateway)
    ids = [m.id async for m in c.models.list()]
    assert "gpt-4o" in ids
    with pytest.raises(openai.AuthenticationError):
        await aclient(gateway, key="sk-wrong").models.list()
    with pytest.raises(openai.NotFoundError):
        await c.chat.completions.create(model="gpt-0", messages=MESSAGES)
