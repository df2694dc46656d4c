"""Duplicate keys in a JSON body are found exactly, at any depth, however the client wrote the
JSON (spacing, escapes, colons inside strings)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aitre.api.jsonbody import has_duplicate_keys, parse_object
from aitre.errors import ApiError


def _dup(raw: bytes) -> bool:
    return has_duplicate_keys(raw, orjson.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "a", "messages": [{"role": "user", "content": "x:y::z"}]}',
        b'{"a:b": 1, "a": {"b:": ":"}}',
        b'{"a": "\\u003a", "b": "\\u003A\\u003a:"}',  # colons written as escapes, in values
        b'{"\\u003a": 1, "::": {"x": 1}}',  # ... and in keys ("\\u003a" is ":", another key than "::")
        b'{"a": "\\\\u003a", "b": 1}',  # an escaped backslash, then plain "u003a": no colon there
        b'{"a" \n :\t1 , "b"  :  {"a" : 1}}',
        b'{"a": [{"k": 1}, {"k": 2}], "b": {"k": {"k": 3}}}',  # equal keys in different objects
        b"{}",
    ],
)
def test_no_duplicates(raw: bytes) -> None:
    assert not _dup(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "cheap", "model": "dear"}',
        b'{"model": "a", "mod\\u0065l": "b"}',  # the same key, one of them escaped
        b'{"a": [1, {"stream": false, "stream": true}]}',
        b'{"a": {"b": {"c": 1, "c": 2}}}',
        b'{"\\u003a": 1, ":": 2}',  # ":" twice, once escaped
        b'{"x": "\\u003a", "k": 1, "k": 2}',
        b'{"x": "\\\\\\u003a", "k": 1, "k": 2}',  # an escaped backslash, then a real escape
    ],
)
def test_duplicates(raw: bytes) -> None:
    assert _dup(raw)


def test_parse_object_refuses_duplicates_and_deep_nesting() -> None:
    with pytest.raises(ApiError) as dup:
        parse_object(b'{"model": "gpt-4o-mini", "model": "gpt-4o"}')
    assert dup.value.status == 400 and dup.value.code == "duplicate_key"
    with pytest.raises(ApiError) as deep:
        parse_object(b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}")
    assert deep.value.status == 400
    assert parse_object(b'{"model": "m"}') == {"model": "m"}


keys = st.text(alphabet=st.sampled_from('ab:"\\\u00e9\u6f22 '), max_size=4)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(alphabet=st.sampled_from('x:"\\\u003a '), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)


def _encode(value: Any, ascii_only: bool, escape_colons: bool) -> str:
    """JSON as a client might write it: optionally every `:` inside a string as `\\u003a`."""
    if isinstance(value, dict):
        items = (
            f"{_encode(k, ascii_only, escape_colons)} : {_encode(v, ascii_only, escape_colons)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v, ascii_only, escape_colons) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.replace(":", "\\u003a") if escape_colons and isinstance(value, str) else text


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=4), st.booleans(), st.booleans())
def test_any_encoding_of_a_dict_has_no_duplicates(
    data: dict[str, Any], ascii_only: bool, escape: bool
) -> None:
    raw = _encode(data, ascii_only, escape).encode()
    assert orjson.loads(raw) == data
    assert not _dup(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_a_key_written_twice_is_found(data: dict[str, Any], ascii_only: bool, escape: bool) -> None:
    key = next(iter(data))
    raw = _encode(data, ascii_only, escape).encode()
    again = _encode({key: "again"}, ascii_only, not escape).encode()
    assert _dup(raw[:-1] + b", " + again[1:])
