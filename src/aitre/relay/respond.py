"""A whole-body answer as a bare ASGI app: the headers prepared once, two `send` calls.

Starlette's `Response` does the same with more generality (header normalisation, background
tasks) than a relayed JSON answer needs, on every request.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send


class BodyResponse:
    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        content_type: str = "application/json",
        request_id: str = "",
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.raw_headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if request_id:
            self.raw_headers.append((b"x-request-id", request_id.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})
