"""`POST /v1/embeddings`: deterministic unit vectors from a hash of each input.

A shortened vector (`dimensions`) is the native one cut and re-normalised, which is how OpenAI's
text-embedding-3 models behave, so the same text keeps pointing the same way at any size.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator import catalog
from aitre.simulator.common import (
    bad_request,
    begin,
    json_answer,
    open_json,
    sim,
)
from aitre.tokenizer import Tokenizer

MAX_INPUTS = 2048
Item = str | list[int]


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int and t >= 0 for t in value)


def parse_input(value: Any) -> list[Item] | str:
    """A list of texts or token arrays, or the error message OpenAI would give."""
    if isinstance(value, str):
        items: list[Item] = [value]
    elif _is_tokens(value):
        items = [value]
    elif (
        isinstance(value, list)
        and value
        and (all(isinstance(v, str) for v in value) or all(map(_is_tokens, value)))
    ):
        items = list(value)
    else:
        return (
            "`input` must be a non-empty string, array of strings, array of tokens, or array of token arrays."
        )
    if len(items) > MAX_INPUTS:
        return f"`input` may hold at most {MAX_INPUTS} items."
    if any(isinstance(i, str) and not i for i in items):
        return "`input` cannot contain an empty string."
    return items


def vector(model: str, item: Item, dims: int) -> npt.NDArray[np.float32]:
    material = item if isinstance(item, str) else "\x00tokens:" + ",".join(map(str, item))
    seed = hashlib.sha256(f"{model}\x00{material}".encode()).digest()
    rng = np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))
    full = rng.standard_normal(catalog.EMBEDDING_MODELS[model])
    cut = full[:dims]
    out: npt.NDArray[np.float32] = (cut / np.linalg.norm(cut)).astype(np.float32)
    return out


def _data(model: str, items: list[Item], dims: int, b64: bool) -> list[dict[str, Any]]:
    data = []
    for index, item in enumerate(items):
        vec = vector(model, item, dims)
        embedding: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if b64 else vec
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return data


def _answer(model: str, items: list[Item], dims: int, b64: bool, tokenizer: Tokenizer | None) -> bytes:
    """The serialised answer: thousands of vectors are too much work for the event loop."""
    answer: dict[str, Any] = {"object": "list", "data": _data(model, items, dims, b64), "model": model}
    if tokenizer is not None:
        tokens = _tokens(tokenizer, model, items)
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _tokens(tokenizer: Tokenizer, model: str, items: list[Item]) -> int:
    return sum(tokenizer.count(i, model) if isinstance(i, str) else len(i) for i in items)


def _dimensions(body: dict[str, Any], model: str) -> int | Response:
    native = catalog.EMBEDDING_MODELS[model]
    dims = body.get("dimensions")
    if dims is None:
        return native
    if model not in catalog.SHORTENABLE_EMBEDDINGS:
        return bad_request(f"This model does not support specifying dimensions: {model}.", "dimensions")
    if type(dims) is not int or not 1 <= dims <= native:
        return bad_request(
            f"`dimensions` must be an integer between 1 and {native} for {model}.", "dimensions"
        )
    return dims


async def embeddings(request: Request) -> Response:
    opened = await open_json(request, catalog.EMBEDDING_MODELS)
    if isinstance(opened, Response):
        return opened
    body, model = opened
    items = parse_input(body.get("input"))
    if isinstance(items, str):
        return bad_request(items, "input")
    dims = _dimensions(body, model)
    if isinstance(dims, Response):
        return dims
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return bad_request("`encoding_format` must be `float` or `base64`.", "encoding_format")
    started = await begin(request, model, False)
    if isinstance(started, Response):
        return started
    ev, fault = started
    tokenizer = None if fault.no_usage else sim(request).tokenizer
    payload = await asyncio.to_thread(_answer, model, items, dims, encoding == "base64", tokenizer)
    return json_answer(payload, fault, ev)
