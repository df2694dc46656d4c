"""`/v1/embeddings`: base64 (the SDK's default) and float, dimensions, token inputs."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest


@pytest.mark.parametrize(
    ("model", "dims"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)],
)
def test_native_dimensions_unit_norm(sdk: openai.OpenAI, model: str, dims: int) -> None:
    resp = sdk.embeddings.create(model=model, input=["The food was delicious", "and the waiter"])
    assert resp.model == model and resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    for d in resp.data:
        vec = np.array(d.embedding)
        assert vec.shape == (dims,)
        assert abs(np.linalg.norm(vec) - 1) < 1e-5
    assert resp.usage.prompt_tokens == 7  # 4 + 3 real cl100k tokens


def test_base64_is_little_endian_float32(http: httpx.Client) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": "hello",
        "encoding_format": "base64",
        "dimensions": 256,
    }
    data = http.post("/v1/embeddings", json=body).json()["data"][0]["embedding"]
    vec = np.frombuffer(base64.b64decode(data), dtype="<f4")
    assert vec.shape == (256,)
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    floats = http.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()["data"][0][
        "embedding"
    ]
    assert np.allclose(vec, floats)


def test_deterministic_and_shortening_keeps_direction(sdk: openai.OpenAI) -> None:
    full = sdk.embeddings.create(model="text-embedding-3-large", input="same text", encoding_format="float")
    again = sdk.embeddings.create(model="text-embedding-3-large", input="same text")
    short = sdk.embeddings.create(model="text-embedding-3-large", input="same text", dimensions=64)
    a, b, s = (np.array(r.data[0].embedding) for r in (full, again, short))
    assert np.allclose(a, b, atol=1e-6)
    assert np.allclose(a[:64] / np.linalg.norm(a[:64]), s, atol=1e-5)
    other = sdk.embeddings.create(model="text-embedding-3-large", input="other text")
    assert not np.allclose(a, np.array(other.data[0].embedding))


def test_token_inputs(sdk: openai.OpenAI) -> None:
    resp = sdk.embeddings.create(model="text-embedding-ada-002", input=[[1, 2, 3], [4, 5]])
    assert len(resp.data) == 2 and resp.usage.prompt_tokens == 5
    resp = sdk.embeddings.create(model="text-embedding-ada-002", input=[10, 20, 30, 40])
    assert len(resp.data) == 1 and resp.usage.prompt_tokens == 4


@pytest.mark.parametrize(
    "body",
    [
        {"model": "text-embedding-3-small", "input": ""},
        {"model": "text-embedding-3-small", "input": []},
        {"model": "text-embedding-3-small"},
        {"model": "text-embedding-3-small", "input": ["a", 1]},
        {"model": "text-embedding-ada-002", "input": "x", "dimensions": 128},
        {"model": "text-embedding-3-small", "input": "x", "dimensions": 1537},
        {"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"},
    ],
)
def test_bad_input_is_400(http: httpx.Client, body: dict[str, object]) -> None:
    r = http.post("/v1/embeddings", json=body)
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_unknown_model_and_fault(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="text-embedding-4", input="x")
    with pytest.raises(openai.InternalServerError):
        sdk.embeddings.create(
            model="text-embedding-3-small", input="x", extra_headers={"x-sim-fault": "status=503"}
        )
