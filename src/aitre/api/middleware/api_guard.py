"""The admin and user APIs (`/api/...`): the key is checked from the headers before a byte of
the body is read, and the body is capped (`AITRE_API_MAX_BODY_BYTES`).

FastAPI reads and parses a route's whole body before it resolves the route's dependencies, the
key check among them: without this, anyone could make the process hold a body of any size
(seen: 300 MB, and the memory stayed with the process) only to be told their key is wrong. A
refused request's unread body is drained and dropped by the server as it arrives.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from aitre.accounts.policy import check_expiry, check_ip
from aitre.api.common import app_state, client_ip, identify, read_body, replay_body, request_id
from aitre.errors import ApiError
from aitre.relay.cancel import ClientGone


class ApiGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        state = app_state(request)
        try:
            caller = await identify(request, state)
            check_expiry(caller)
            check_ip(caller, client_ip(request))
            if scope["path"].startswith("/api/admin/") and not caller.is_admin:
                raise ApiError(403, "This route needs an admin's API key.", code="admin_required")
            body = await read_body(request, state.settings.api_max_body_bytes)
        except ApiError as exc:
            await exc.to_response(request_id(request))(scope, receive, send)
            return
        except ClientGone:
            return
        scope["aitre.caller"] = caller
        await self.app(scope, replay_body(body, receive), send)
