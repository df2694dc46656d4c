"""Why a removal did not happen, as codes the gateway maps to HTTP answers (`api_error`)."""

from __future__ import annotations

from aitre.errors import ApiError

# code -> (HTTP status, OpenAI error type) when a client is answered
_STATUS: dict[str, tuple[int, str]] = {
    "not_a_video": (400, "invalid_request_error"),
    "unsupported_video": (400, "invalid_request_error"),
    "video_too_large": (400, "invalid_request_error"),
    "video_too_long": (400, "invalid_request_error"),
    "resolution_too_large": (400, "invalid_request_error"),
    "no_watermark_found": (422, "invalid_request_error"),
    "remover_busy": (503, "server_error"),
    "remover_timeout": (504, "server_error"),
    "remover_crashed": (500, "server_error"),
    "remover_failed": (500, "server_error"),
}


class RemoverError(Exception):
    """A removal that failed; `code` is one of the keys above, `message` is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in _STATUS else "remover_failed"
        self.message = message

    @property
    def client_fault(self) -> bool:
        """The input is the problem: retrying the same video cannot succeed."""
        return _STATUS[self.code][0] < 500

    def api_error(self) -> ApiError:
        status, kind = _STATUS[self.code]
        headers = {"Retry-After": "10"} if self.code == "remover_busy" else None
        return ApiError(status, self.message, type=kind, code=self.code, headers=headers)


class RemoverBusy(RemoverError):
    def __init__(self, message: str = "the watermark remover is busy; try again shortly") -> None:
        super().__init__("remover_busy", message)
