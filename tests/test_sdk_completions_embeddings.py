"""Legacy completions and embeddings through the gateway, with the official SDK."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.support.clients import aclient, client
from tests.support.processes import Gateway


def test_completions_non_stream(gateway: Gateway) -> None:
    raw = client(gateway).completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7, temperature=0
    )
    resp = raw.parse()
    assert resp.object == "text_completion"
    assert resp.choices[0].text
    assert resp.usage is not None and resp.usage.completion_tokens <= 7
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["endpoint"] == "completions"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        resp.usage.prompt_tokens,
        resp.usage.completion_tokens,
    )


def test_completions_stream_and_usage(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Tell me about rivers",
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    plain = list(
        client(gateway).completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Tell me about rivers", max_tokens=20, stream=True
        )
    )
    assert all(c.choices for c in plain)
    assert "".join(c.choices[0].text for c in plain) == text


def test_completions_need_a_prompt(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.api + "/completions",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json={"model": "gpt-3.5-turbo-instruct"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt"


def test_embeddings_default_sdk_base64_decodes_to_native_dimension(gateway: Gateway) -> None:
    raw = client(gateway).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="The food was delicious"
    )
    resp = raw.parse()
    vec = np.array(resp.data[0].embedding)
    assert vec.shape == (1536,)
    assert abs(np.linalg.norm(vec) - 1.0) < 1e-3
    assert resp.model == "text-embedding-3-small"
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["endpoint"] == "embeddings" and row["prompt_tokens"] == resp.usage.prompt_tokens > 0


def test_embeddings_dimensions_float_and_arrays(gateway: Gateway) -> None:
    c = client(gateway)
    resp = c.embeddings.create(
        model="text-embedding-3-large", input=["a", "b", "c"], dimensions=256, encoding_format="float"
    )
    assert [len(d.embedding) for d in resp.data] == [256, 256, 256]
    assert [d.index for d in resp.data] == [0, 1, 2]
    again = c.embeddings.create(
        model="text-embedding-3-large", input=["a"], dimensions=256, encoding_format="float"
    )
    assert again.data[0].embedding == resp.data[0].embedding  # deterministic
    tokens = c.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3, 4]], encoding_format="float"
    )
    assert tokens.usage.prompt_tokens == 4


def test_embeddings_raw_base64_is_little_endian_float32(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.api + "/embeddings",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json={
            "model": "text-embedding-3-small",
            "input": "hi",
            "encoding_format": "base64",
            "dimensions": 64,
        },
    )
    arr = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert arr.shape == (64,)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "text-embedding-3-small"},
        {"model": "text-embedding-3-small", "input": ""},
        {"model": "text-embedding-3-small", "input": []},
        {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
    ],
)
def test_embeddings_bad_input_is_400(gateway: Gateway, body: dict[str, object]) -> None:
    r = httpx.post(
        gateway.api + "/embeddings", headers={"Authorization": f"Bearer {gateway.user_key}"}, json=body
    )
    assert r.status_code == 400


async def test_async_embeddings(gateway: Gateway) -> None:
    resp = await aclient(gateway).embeddings.create(model="text-embedding-ada-002", input="hello")
    assert len(resp.data[0].embedding) == 1536
