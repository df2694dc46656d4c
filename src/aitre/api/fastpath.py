"""The front door. It owns the life cycle (ASGI lifespan) and dispatches:

- relay endpoints, health, media: straight to their handlers, one layer, with the request id
  and the OpenAI-format error handling done here;
- the built-in simulator: to its own app under `/sim`;
- everything else (admin and user APIs, docs): to the FastAPI app, built on first use.

The relay is the hot path, and a FastAPI/Starlette stack wraps each request in about ten layers
(error middleware, exception middleware, exit stacks, router, route, request/response adapters)
that the relay does not use. Dispatching here roughly halved the gateway's own time per request
(measured with `bench/`), and a gateway that only relays never imports FastAPI (less memory).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from aitre.errors import ApiError
from aitre.ids import new_request_id

log = logging.getLogger("aitre")

Handler = Callable[[Request], Awaitable[Any]]
Lifespan = Callable[[], AbstractAsyncContextManager[Any]]


class PrefixRoute(NamedTuple):
    """`<prefix><param><suffix>`: the param is the rest of the path (it may hold `/`) between the
    two, e.g. `/media/{name}` or `/mj/task/{id}/fetch`. The first route that matches the path
    and the method answers."""

    prefix: str
    param: str
    handler: Handler
    suffix: str = ""
    methods: tuple[str, ...] = ("GET", "HEAD")


class Gateway:
    def __init__(
        self,
        routes: dict[tuple[str, str], Handler],
        prefixes: list[PrefixRoute],
        lifespan: Lifespan,
        build_fallback: Callable[[], ASGIApp],
        mounts: list[Mount] | None = None,
    ) -> None:
        self.routes = routes
        self._paths = {path: sorted(m for m, p in routes if p == path) for _, path in routes}
        self.prefixes = prefixes
        self._prefix_methods = frozenset(m for route in prefixes for m in route.methods)
        self.lifespan = lifespan
        self.mounts = mounts or []
        self._build_fallback = build_fallback
        self._fallback: ASGIApp | None = None
        self.state: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            scope["aitre.state"] = self.state
            handler = self.routes.get((scope["method"], scope["path"]))
            if handler is not None:
                await self._serve(handler, scope, receive, send)
                return
            method = scope["method"]
            if method in self._prefix_methods:
                path = scope["path"]
                for prefix, param, prefixed, suffix, methods in self.prefixes:
                    end = len(path) - len(suffix)
                    if (
                        method in methods
                        and path.startswith(prefix)
                        and end > len(prefix)
                        and path.endswith(suffix)
                    ):
                        scope["path_params"] = {param: path[len(prefix) : end]}
                        await self._serve(prefixed, scope, receive, send)
                        return
            allowed = self._paths.get(scope["path"])
            if allowed is not None:
                await self._serve(_not_allowed(allowed), scope, receive, send)
                return
            for mount in self.mounts:
                match, child = mount.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await mount.handle(scope, receive, send)
                    return
        elif kind == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.fallback()(scope, receive, send)

    def fallback(self) -> ASGIApp:
        if self._fallback is None:
            app = self._build_fallback()
            state = getattr(app, "state", None)
            if state is not None:
                state.aitre = self.state
            self._fallback = app
        return self._fallback

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        rid = new_request_id()
        scope["aitre.request_id"] = rid
        request = Request(scope, receive)
        try:
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
        finally:
            # The key's in-flight slot (`common.authenticate`), on every way out: answered,
            # refused, streamed to the end, cut by a disconnect, cancelled at shutdown.
            key = scope.get("aitre.inflight")
            if key is not None:
                self.state.accountant.inflight.leave(key)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        context = self.lifespan()
        try:
            self.state = await context.__aenter__()
        except BaseException as exc:
            log.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await context.__aexit__(None, None, None)
        except BaseException as exc:
            log.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _not_allowed(methods: list[str]) -> Handler:
    async def handler(request: Request) -> Any:
        raise ApiError(
            405,
            f"Method {request.method} is not allowed here; use {', '.join(methods)}.",
            code="method_not_allowed",
            headers={"allow": ", ".join(methods)},
        )

    return handler
