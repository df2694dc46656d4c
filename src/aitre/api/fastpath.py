"""The front door: relay endpoints are dispatched straight to their handlers; everything else
(admin API, docs, media, the simulator) goes through FastAPI.

The relay is the hot path, and a FastAPI/Starlette stack wraps each request in about ten layers
(error middleware, exception middleware, exit stacks, router, route, request/response adapters)
that the relay does not use: it has its own error shape and its own streaming responses. Doing
the dispatch, the request id and the error handling here in one layer roughly halves the
gateway's own time per request (measured with `bench/`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from aitre.errors import ApiError

log = logging.getLogger("aitre")

Handler = Callable[[Request], Awaitable[Any]]


class FastPath:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = routes
        self.state: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None:
            await self.app(scope, receive, send)
            return
        rid = "req_" + os.urandom(12).hex()
        scope["aitre.request_id"] = rid
        scope["app"] = self.app
        if self.state is None:
            self.state = getattr(getattr(self.app, "state", None), "aitre", None)
        scope["aitre.state"] = self.state
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.to_response(rid)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = ApiError(
                500, "The gateway hit an internal error.", type="server_error", code="internal_error"
            ).to_response(rid)
        # Every answer carries the request id: ours set it already; add it to any other.
        headers = getattr(response, "raw_headers", None)
        if headers is not None and not any(k == b"x-request-id" for k, _ in headers):
            headers.append((b"x-request-id", rid.encode()))
        await response(scope, receive, send)
