"""The FastAPI application for everything that is not the relay: the admin and user APIs and
the OpenAPI document of the whole gateway (`/openapi.json`, `/docs`, `/redoc`; the public routes,
which the fast path serves, are described in `api.openapi_public`). Built on first use
(`fastpath.Gateway`): a gateway that only relays never imports FastAPI or builds these models."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aitre import __version__
from aitre.api import openapi_public
from aitre.api.admin.routes import router as admin_router
from aitre.api.common import request_id
from aitre.api.middleware.api_guard import ApiGuard
from aitre.api.middleware.request_id import RequestIdMiddleware
from aitre.api.user.routes import router as user_router
from aitre.config import Settings
from aitre.errors import ApiError

log = logging.getLogger("aitre")


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.to_response(request_id(request))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return ApiError(status, str(exc.detail), code=code, headers=dict(exc.headers or {})).to_response(
            request_id(request)
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"Invalid request: {first.get('msg', 'bad input')}" + (f" ({param})" if param else "")
        return ApiError(400, message, param=param).to_response(request_id(request))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = ApiError(500, "The gateway hit an internal error.", type="server_error", code="internal_error")
        return err.to_response(request_id(request))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


DESCRIPTION = (
    "A self-hosted AI API gateway. `/v1/...`: OpenAI's API (the official SDKs work unchanged) with "
    "an aitre key; `/media/...`: files the gateway keeps; `/api/admin/...` and `/api/user/...`: "
    "accounts, keys, channels, prices and usage. Errors always have OpenAI's shape, "
    '`{"error": {"message", "type", "param", "code"}}`.'
)


def build_api(settings: Settings | None = None) -> FastAPI:
    """With `docs_enabled` off, `/docs`, `/redoc` and `/openapi.json` are not routes: they get the
    404 every unknown path gets."""
    settings = settings or Settings()
    docs = settings.docs_enabled
    app = FastAPI(
        title="aitre",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.include_router(admin_router)
    app.include_router(user_router)
    if settings.console_enabled:
        from aitre.console.routes import install  # templates and static files: only when served

        install(app, settings)
    _install_error_handlers(app)
    app.add_middleware(ApiGuard)
    app.add_middleware(RequestIdMiddleware)  # the outer one: the guard's refusals carry the id too

    def openapi() -> dict[str, Any]:
        # Built on the first request for it, then kept (about 100 kB of JSON, tens of ms to build).
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = openapi_public.add_to(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
