"""How upstream failures become client errors, and which of them another channel might fix."""

from __future__ import annotations

import re
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


class UpstreamError(ApiError):
    """An upstream's failure as the client sees it. `detail` is the whole story for the operator
    (the usage log's error and attempts): hosts and ports, the upstream's own words."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "upstream_error",
        code: str | None = "upstream_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(status, message, type=type, code=code, param=param, headers=headers)
        self.detail = detail or message


def detail(error: ApiError) -> str:
    """What the usage log records for `error`."""
    return error.detail if isinstance(error, UpstreamError) else error.message


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def upstream_code(body: bytes) -> str | None:
    data = _parse(body)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return str(code) if code else None
    if isinstance(err, str):  # BFL: {"error": "<code>", "message": ...}
        return err
    return None


def upstream_message(body: bytes) -> str:
    """The human message from an upstream error body, whatever its shape (for the operator)."""
    data = _parse(body)
    if data is None:
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


# An upstream's message about a refused request goes to the client only when it is about the
# request (a parameter out of range, a prompt refused), not about the gateway: nothing that
# names credentials, the operator's account or quota, a host or an address, and no error page
# or stack trace. Anything else becomes a generic message; the operator sees it all in the log.
_LEAKY = re.compile(
    r"api[\s_-]?key|x-key|authori[sz]|bearer|credential|secret|password|token\s+(?:is\s+)?invalid|"
    r"\bsk-|quota|billing|credit|balance|account|organi[sz]ation|\borg-|"
    r"https?://|\blocalhost\b|\b\d{1,3}(?:\.\d{1,3}){3}\b|\[[0-9a-f:]+\]|[a-z][\w.-]*:\d{1,5}\b|"
    r"traceback|\bfile \"|exception|\bat [\w.$]+\(|stack|<\s*(?:!doctype|html|body|head)",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_MESSAGE_LIMIT = 1000


def _validation_message(detail: list[Any]) -> tuple[str, str | None] | None:
    """FastAPI-style `{"detail": [{"loc": [...], "msg": ...}]}` (BFL's validation errors)."""
    first = detail[0] if detail and isinstance(detail[0], dict) else None
    if first is None or not isinstance(first.get("msg"), str):
        return None
    loc = [str(part) for part in first.get("loc") or () if part not in ("body", "query")]
    param = loc[-1] if loc else None
    return (f"{'.'.join(loc)}: {first['msg']}" if loc else first["msg"]), param


def client_facing(body: bytes) -> tuple[str, str | None, str | None] | None:
    """(message, param, code) of a refused request when they help the client, else None."""
    data = _parse(body)
    if not isinstance(data, dict):
        return None
    err, message, param, code = data.get("error"), None, None, None
    if isinstance(err, dict):
        message, param, code = err.get("message"), err.get("param"), err.get("code")
    elif isinstance(data.get("message"), str):
        message, code = data["message"], err
    elif isinstance(data.get("detail"), str):
        message = data["detail"]
    elif isinstance(data.get("detail"), list):
        found = _validation_message(data["detail"])
        if found is not None:
            message, param = found
    if not isinstance(message, str) or not message.strip() or len(message) > _MESSAGE_LIMIT:
        return None
    if _LEAKY.search(message):
        return None
    param = param if isinstance(param, str) and _IDENTIFIER.fullmatch(param.lower()) else None
    code = code if isinstance(code, str) and _IDENTIFIER.fullmatch(code) else None
    return message.strip(), param, code


def error_from_status(status: int, body: bytes, headers: dict[str, str] | None = None) -> UpstreamError:
    said = f"HTTP {status}: {upstream_message(body)}"
    if status not in CHANNEL_AUTH_STATUS and upstream_code(body) in ACCOUNT_DEAD_CODES:
        return UpstreamError(
            502,
            "The upstream account behind this gateway cannot serve requests right now.",
            code="upstream_account_unusable",
            detail=said,
        )
    if status == 429:
        retry = (headers or {}).get("retry-after")
        return UpstreamError(
            429,
            "The upstream is rate limiting this gateway; retry shortly.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry} if retry else None,
            detail=said,
        )
    if status in CHANNEL_AUTH_STATUS:
        return UpstreamError(
            502,
            f"The upstream rejected this gateway's credentials (HTTP {status}).",
            code="upstream_auth_failed",
            detail=said,
        )
    if status >= 500 or status in (408, 409):
        return UpstreamError(502, f"The upstream failed (HTTP {status}).", detail=said)
    # Other 4xx: the request itself was refused; the client sees why when that is safe to show.
    helpful = client_facing(body)
    if helpful is None:
        message = f"The upstream refused the request (HTTP {status})."
        return UpstreamError(
            status, message, type="invalid_request_error", code="upstream_rejected", detail=said
        )
    message, param, code = helpful
    return UpstreamError(
        status,
        message,
        type="invalid_request_error",
        code=code or "upstream_rejected",
        param=param,
        detail=said,
    )


_FAILURES = {
    "connect": ("The upstream could not be reached.", "upstream_unreachable"),
    "timeout": ("The upstream did not answer in time.", "upstream_timeout"),
}


def error_from_failure(failure: UpstreamFailure) -> UpstreamError:
    """No host, port or URL for the client (`failure.message` has them): only what happened."""
    if failure.kind == "busy":  # our own connections to it are all in use: come back in a moment
        return UpstreamError(
            503,
            "The upstream is busy with other requests of this gateway; retry shortly.",
            type="server_error",
            code="upstream_busy",
            headers={"retry-after": "1"},
            detail=failure.message,
        )
    message, code = _FAILURES.get(
        failure.kind, ("The upstream's answer was broken off or malformed.", "upstream_error")
    )
    return UpstreamError(502, message, code=code, detail=failure.message)


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
