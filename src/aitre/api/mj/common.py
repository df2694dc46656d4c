"""What every MJ route needs: the caller (a bearer key, or midjourney-proxy's `mj-api-secret`
header carrying the same key), the task service, and task ids."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, cast

from starlette.requests import Request

from aitre.accounts.auth import Caller
from aitre.accounts.keys import parse_bearer
from aitre.accounts.policy import check_expiry, check_ip
from aitre.api.common import app_state, client_ip, header
from aitre.errors import ApiError, invalid_api_key

if TYPE_CHECKING:
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskService

KIND = "mj"


async def mj_caller(request: Request, state: AppState) -> Caller:
    """The key from `Authorization: Bearer`, else from `mj-api-secret` (what clients configured
    for a bare midjourney-proxy send; new-api reads it the same way). 401 without a valid one."""
    auth = header(request, b"authorization")
    key = parse_bearer(auth)
    if key is None or key == "midjourney-proxy":
        secret = (header(request, b"mj-api-secret") or "").strip()
        key = parse_bearer(secret) or secret or None
    if key is None:
        raise ApiError(
            401,
            "You didn't provide an API key. Send it as `Authorization: Bearer sk-...` "
            "or `mj-api-secret: sk-...`.",
            code="missing_api_key",
        )
    caller = await state.catalog.keys.resolve(key)
    if caller is None:
        raise invalid_api_key()
    check_expiry(caller)
    check_ip(caller, client_ip(request))
    return caller


def task_service(state: AppState) -> TaskService:
    service = getattr(state, "tasks", None)
    if service is None:
        raise ApiError(503, "The task engine is not running.", type="server_error", code="tasks_unavailable")
    return cast("TaskService", service)


async def begin(request: Request) -> tuple[AppState, Caller, TaskService]:
    state = app_state(request)
    caller = await mj_caller(request, state)
    return state, caller, task_service(state)


def new_task_id() -> str:
    """19 digits: the time in ms, then six random digits (midjourney-proxy's ids are 16-digit
    numbers; clients keep them as strings or 64-bit integers, and 19 digits fit both)."""
    return f"{time.time_ns() // 1_000_000}{secrets.randbelow(10**6):06d}"


def is_task_id(value: str) -> bool:
    return value.isdigit() and 16 <= len(value) <= 19
