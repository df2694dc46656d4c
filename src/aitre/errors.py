"""Errors in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`.

Every error a client sees is an `ApiError`; the HTTP layer turns it into a response. The type and
code values follow OpenAI's so that SDK users can branch on them.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class DomainError(ValueError):
    """A request the domain logic cannot do as asked (accounts, channels, prices). The HTTP layer
    answers with `status` and `code` (`api.deps.to_api_error`), the CLI prints the message."""

    status = 400
    code: str | None = None


class NotFoundError(DomainError):
    status = 404
    code = "not_found"


class ConflictError(DomainError):
    status = 409
    code = "conflict"


class ApiError(Exception):
    """An error with an HTTP status that goes to the client in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_response(self, request_id: str = "") -> Response:
        headers = dict(self.headers)
        if request_id:
            headers["x-request-id"] = request_id
        # Tell the official SDK not to retry errors that cannot succeed on retry.
        if self.status < 500 and self.status not in (408, 409, 429):
            headers.setdefault("x-should-retry", "false")
        return Response(
            orjson.dumps(self.body()), status_code=self.status, media_type="application/json", headers=headers
        )

    def sse_event(self) -> bytes:
        """The error as one SSE event, for failures after a stream has started."""
        return b"data: " + orjson.dumps(self.body()) + b"\n\n"


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def invalid_api_key(message: str = "Incorrect API key provided.") -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def upstream_error(status: int, message: str, code: str = "upstream_error") -> ApiError:
    return ApiError(status, message, type="upstream_error", code=code)
