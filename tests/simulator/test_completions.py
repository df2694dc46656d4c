"""Legacy `/v1/completions` through the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest


def test_say_this_is_a_test(sdk: openai.OpenAI) -> None:
    resp = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7)
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "This is a test!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 5)


def test_default_max_tokens_cuts_at_16(sdk: openai.OpenAI) -> None:
    resp = sdk.completions.create(model="davinci-002", prompt="Tell me a long story about the sea")
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 16


def test_prompts_n_and_echo(sdk: openai.OpenAI) -> None:
    resp = sdk.completions.create(
        model="babbage-002", prompt=["one prompt", "another prompt"], n=2, echo=True, max_tokens=3, suffix="!"
    )
    assert [c.index for c in resp.choices] == [0, 1, 2, 3]
    assert resp.choices[0].text.startswith("one prompt")
    assert resp.choices[2].text.startswith("another prompt")
    assert all(c.finish_reason == "length" for c in resp.choices)
    assert resp.usage is not None and resp.usage.completion_tokens == 12


def test_token_prompt_counts_its_length(sdk: openai.OpenAI) -> None:
    resp = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt=[[1, 2, 3, 4], [5, 6]], max_tokens=2)
    assert resp.usage is not None and resp.usage.prompt_tokens == 6
    assert len(resp.choices) == 2


def test_stream_with_usage(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Tell me a story",
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-2].choices[0].finish_reason == "length"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 5
    whole = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="Tell me a story", max_tokens=5)
    assert whole.choices[0].text == text


def test_errors(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        sdk.completions.create(model="gpt-4o-mini-instruct", prompt="x")
    assert nf.value.code == "model_not_found"
    r = http.post("/v1/completions", json={"model": "davinci-002"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = http.post("/v1/completions", json={"model": "davinci-002", "prompt": "x", "max_tokens": -1})
    assert r.status_code == 400


def test_fault(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk.completions.create(model="davinci-002", prompt="x", extra_headers={"x-sim-fault": "status=503"})
