"""A client's own request id (`X-Request-Id`): taken when it is safe to log and to send on.

The gateway's id (`req_...`) stays the key of a request's books: the ledger holds and the usage
log are keyed by it, and a client could send one id twice. A client's id is what the request is
traced by outside: it comes back in the answer's `x-request-id`, goes to the upstream as
`X-Request-Id`, and is in the access line (`client_request_id`) next to the gateway's. An id that
is too long or has other characters than letters, digits and `._:-` is ignored (the request is
served and traced by the gateway's id), never refused: tracing must not break a client.
"""

from __future__ import annotations

import re

MAX_CHARS = 128
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def client_request_id(headers: dict[bytes, bytes]) -> str | None:
    """The client's `X-Request-Id` (the last, if sent twice), if it is safe; else None."""
    value = headers.get(b"x-request-id")
    if value is None or _SAFE.fullmatch(value) is None:
        return None
    return value.decode("ascii")
