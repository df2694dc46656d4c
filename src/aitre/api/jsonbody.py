"""A request's JSON body as a dict, refusing bodies that name a key twice.

A JSON parser keeps one of two equal keys (orjson the last, others the first), so a body with
`"model"` twice could pass the gateway's checks (a key's model allow-list, the price, `stream`,
`max_tokens` for the reservation) with one value while the upstream, which gets the client's
bytes as they are, acts on the other. Such bodies are refused, at every depth.

The check costs about a microsecond for an ordinary body, all in C: every `:` outside a JSON
string separates a key from its value, so a body has duplicate keys exactly when its bytes
hold more such colons than the parsed objects have keys. Serialising the parsed value again
(orjson writes `:` only as separators and as itself inside strings) gives the parsed side's
count; the colons inside strings are the same on both sides, except those a client wrote as
`\\u003a`, which are counted separately (rare, and only then is a regex run).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from aitre.errors import bad_request

_ESCAPED_COLON = re.compile(rb"(\\+)u003[aA]")


def _escaped_colons(raw: bytes) -> int:
    """Colons written as `\\u003a` inside strings: a run of backslashes of odd length ends in
    one that starts an escape (an even run is escaped backslashes, then plain text)."""
    return sum(len(m.group(1)) % 2 for m in _ESCAPED_COLON.finditer(raw))


def has_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """Whether `raw`, valid JSON that parsed to `parsed`, names a key twice in some object.
    Raises `orjson.JSONEncodeError` for values nested deeper than orjson writes (254 levels)."""
    colons = raw.count(b":")
    if b"\\" in raw and (b"\\u003a" in raw or b"\\u003A" in raw):  # one byte looked for, most often
        colons += _escaped_colons(raw)
    return colons != orjson.dumps(parsed).count(b":")


def parse_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. Make sure it is valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    try:
        duplicates = has_duplicate_keys(raw, data)
    except orjson.JSONEncodeError:  # the relay could not send it on either (it re-serialises bodies)
        raise bad_request("The JSON body is nested too deeply.") from None
    if duplicates:
        raise bad_request(
            "The JSON body names the same key twice in one object; send each key once.",
            code="duplicate_key",
        )
    return data
