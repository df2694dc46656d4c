"""How upstream failures become client errors, and which of them another channel might fix."""

from __future__ import annotations

from typing import Any

import orjson

from aitre.errors import ApiError
from aitre.relay.upstream import UpstreamFailure

# Statuses where another channel may well succeed: rate limits, overload, server faults.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
# Our own codes for failures that say the channel, not the request, is broken: disable it.
CHANNEL_DEAD = frozenset({"upstream_auth_failed", "upstream_account_unusable"})
# The upstream refused the channel's own credentials: the client is not at fault.
CHANNEL_AUTH_STATUS = frozenset({401, 402, 403})


# Upstream error codes that mean the channel's account cannot serve anything until an operator acts.
ACCOUNT_DEAD_CODES = frozenset(
    {
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "invalid_api_key",
        "access_terminated",
    }
)


def upstream_code(body: bytes) -> str | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return str(code) if code else None
    if isinstance(err, str):  # BFL: {"error": "<code>", "message": ...}
        return err
    return None


def upstream_message(body: bytes) -> str:
    """The human message from an upstream error body, whatever its shape."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or "no message"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return str(data)[:300]


def error_from_status(status: int, body: bytes, headers: dict[str, str] | None = None) -> ApiError:
    message = upstream_message(body)
    if status not in CHANNEL_AUTH_STATUS and upstream_code(body) in ACCOUNT_DEAD_CODES:
        return ApiError(
            502,
            f"The upstream account behind this gateway cannot serve requests ({message}).",
            type="upstream_error",
            code="upstream_account_unusable",
        )
    if status == 429:
        retry = (headers or {}).get("retry-after")
        return ApiError(
            429,
            f"Upstream rate limit: {message}",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry} if retry else None,
        )
    if status in CHANNEL_AUTH_STATUS:
        return ApiError(
            502,
            f"The upstream rejected this gateway's credentials (HTTP {status}).",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    if status >= 500 or status in (408, 409):
        return ApiError(
            502, f"Upstream error (HTTP {status}): {message}", type="upstream_error", code="upstream_error"
        )
    # Other 4xx: the request itself was refused; the client should see why, with the same status.
    return ApiError(status, message, type="invalid_request_error", code="upstream_rejected")


def error_from_failure(failure: UpstreamFailure) -> ApiError:
    if failure.kind == "busy":  # our own connections to it are all in use: come back in a moment
        return ApiError(
            503, failure.message, type="server_error", code="upstream_busy", headers={"retry-after": "1"}
        )
    code = {"timeout": "upstream_timeout", "connect": "upstream_unreachable"}.get(
        failure.kind, "upstream_error"
    )
    return ApiError(502, failure.message, type="upstream_error", code=code)


def no_channel(model: str) -> ApiError:
    return ApiError(
        503,
        f"No channel is available for model `{model}` right now.",
        type="server_error",
        code="no_available_channel",
    )


def channels_busy(model: str) -> ApiError:
    """Every channel for the model is at its `max_concurrency`: come back in a moment."""
    return ApiError(
        503,
        f"Every channel for model `{model}` is at its concurrency limit; retry shortly.",
        type="server_error",
        code="channels_busy",
        headers={"retry-after": "1"},
    )
