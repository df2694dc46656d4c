"""The FastAPI application for everything that is not the relay: the admin and user APIs and
their OpenAPI docs. Built on first use (`fastpath.Gateway`): a gateway that only relays never
imports FastAPI or builds these models."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aitre import __version__
from aitre.api.admin.routes import router as admin_router
from aitre.api.common import request_id
from aitre.api.middleware.api_guard import ApiGuard
from aitre.api.middleware.request_id import RequestIdMiddleware
from aitre.api.user.routes import router as user_router
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


def build_api() -> FastAPI:
    app = FastAPI(title="aitre", version=__version__, docs_url="/docs", redoc_url=None)
    app.include_router(admin_router)
    app.include_router(user_router)
    _install_error_handlers(app)
    app.add_middleware(ApiGuard)
    app.add_middleware(RequestIdMiddleware)  # the outer one: the guard's refusals carry the id too
    return app
