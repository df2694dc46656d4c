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
from time import perf_counter
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from aitre.errors import ApiError
from aitre.ids import new_request_id
from aitre.observe.logs import access
from aitre.observe.trace import client_request_id

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
            path = scope["path"]
            handler = self.routes.get((scope["method"], path))
            if handler is not None:
                await self._serve(handler, path, scope, receive, send)
                return
            method = scope["method"]
            if method in self._prefix_methods:
                for prefix, param, prefixed, suffix, methods in self.prefixes:
                    end = len(path) - len(suffix)
                    if (
                        method in methods
                        and path.startswith(prefix)
                        and end > len(prefix)
                        and path.endswith(suffix)
                    ):
                        scope["path_params"] = {param: path[len(prefix) : end]}
                        await self._serve(prefixed, f"{prefix}{{{param}}}{suffix}", scope, receive, send)
                        return
            allowed = self._paths.get(path)
            if allowed is not None:
                await self._serve(_not_allowed(allowed), path, scope, receive, send)
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

    async def _serve(self, handler: Handler, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `handler`; every answer carries the request id (the client's own, if it gave a
        safe one: `observe.trace`) and the gateway's own time so far, without the upstream's
        (`x-aitre-overhead-ms`, counted in `aitre_overhead_seconds` too)."""
        started = perf_counter()
        rid = new_request_id()
        scope["aitre.request_id"] = rid
        # Built here for the auth check too (`api.common.header`).
        traced = client_request_id(scope.setdefault("aitre.headers", dict(scope["headers"])))
        if traced is not None:
            scope["aitre.trace_id"] = traced
        request = Request(scope, receive)
        state = self.state
        status = 500
        overhead = 0.0
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
            job = scope.get("aitre.job")
            overhead = max(
                0.0, perf_counter() - started - (job.upstream_ms / 1000.0 if job is not None else 0.0)
            )
            status = getattr(response, "status_code", 200)
            headers = getattr(response, "raw_headers", None)
            if headers is not None:
                if traced is not None:
                    headers[:] = [h for h in headers if h[0] != b"x-request-id"]
                    headers.append((b"x-request-id", traced.encode()))
                elif not any(k == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", rid.encode()))
                headers.append((b"x-aitre-overhead-ms", b"%.3f" % (overhead * 1000.0)))
            state.metrics.answered(path, status, overhead)
            await response(scope, receive, send)
        finally:
            # The key's in-flight slot (`common.authenticate`), on every way out: answered,
            # refused, streamed to the end, cut by a disconnect, cancelled at shutdown.
            key = scope.get("aitre.inflight")
            if key is not None:
                state.accountant.inflight.leave(key)
            if state.settings.access_log:
                _access(scope, path, status, started, overhead, rid, traced)

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


def _access(
    scope: Scope, path: str, status: int, started: float, overhead: float, rid: str, traced: str | None
) -> None:
    """The request's access line; a relayed one says what its books say (a stream cut after its
    start was a 200 to the client and is a 499 or 502 there)."""
    fields: dict[str, Any] = {"request_id": rid}
    if traced is not None:
        fields["client_request_id"] = traced
    job = scope.get("aitre.job")
    row = job.row if job is not None else None
    if row is not None:
        status = row["status_code"]
        fields.update(
            route=row["endpoint"],
            model=row["model"],
            channel=row["channel_id"],
            stream=row["stream"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            cost=row["quota"],
            user_id=row["user_id"],
        )
        if row["error"]:
            fields["error"] = row["error"][:300]
    access(scope["method"], path, status, (perf_counter() - started) * 1000.0, overhead * 1000.0, fields)


def _not_allowed(methods: list[str]) -> Handler:
    async def handler(request: Request) -> Any:
        raise ApiError(
            405,
            f"Method {request.method} is not allowed here; use {', '.join(methods)}.",
            code="method_not_allowed",
            headers={"allow": ", ".join(methods)},
        )

    return handler
