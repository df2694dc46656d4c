"""What every midjourney-proxy route shares: the key, the body, the answer envelope
(`SubmitResultVO`: `{code, description, result, properties}`) and Spring Boot's error object,
which is what a Java proxy sends for HTTP-level errors."""

from __future__ import annotations

import asyncio
import email.utils
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator.common import ErrorFactory, SimEvent, authorized, begin
from aitre.simulator.faults import Fault
from aitre.simulator.mj import MjState
from aitre.simulator.mj_images import read_upload
from aitre.simulator.png import BadImage, decode_data_uri

NO_TASK = "关联任务不存在或已失效"
BAD_STATE = "关联任务状态错误"

Decoded = tuple[bytes, tuple[int, int, int]]  # a kept PNG and its mean colour


def mj_state(request: Request) -> MjState:
    state: MjState = request.app.state.mj
    return state


def mj_authorized(request: Request) -> bool:
    """The simulator's keys, sent as midjourney-proxy's `mj-api-secret` or as a bearer token."""
    return authorized(request, request.headers.get("mj-api-secret") or None)


def vo(code: int, description: str, result: Any = None, **properties: Any) -> dict[str, Any]:
    return {"code": code, "description": description, "result": result, "properties": properties}


def reply(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


def spring_error(path: str) -> ErrorFactory:
    """Errors the way a Spring Boot proxy sends them (its auth interceptor's 401 has no body)."""

    def make(status: int, message: str, code: str | None, headers: dict[str, str] | None) -> Response:
        if status == 401:
            return Response(status_code=401, headers=headers)
        body = {
            "timestamp": email.utils.formatdate(usegmt=True),
            "status": status,
            "error": _phrase(status),
            "message": message,
            "path": path,
        }
        return Response(orjson.dumps(body), status, headers, "application/json")

    return make


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def read_body(request: Request) -> dict[str, Any] | Response:
    """The key, then a JSON object body."""
    if not mj_authorized(request):
        return Response(status_code=401)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        message = "Required request body is missing or not JSON"
        return spring_error(request.url.path)(400, message, None, None)
    return body


async def open_mj(request: Request, model: str) -> tuple[SimEvent, Fault] | Response:
    """Log the request and apply the HTTP-level faults, answered in Spring's shape."""
    return await begin(request, model, False, spring_error(request.url.path))


def str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def _read_all(values: list[str]) -> list[Decoded]:
    return [read_upload(decode_data_uri(v)) for v in values]


async def read_images(values: list[Any]) -> list[Decoded] | None:
    """Data URLs (or bare base64) decoded in a worker thread; None if one is not an image."""
    if not all(isinstance(v, str) for v in values):
        return None
    try:
        return await asyncio.to_thread(_read_all, values)
    except BadImage:
        return None
