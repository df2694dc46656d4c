"""`POST /mj/_callback?task=<id>&token=<secret>`: a midjourney-proxy upstream's notifyHook.

With a channel's `callback` on (`config: {"callback": true}`), aitre gives the upstream this URL
as each task's notifyHook (`adapters/mj_proxy.py`). The token is an HMAC of the task id under the
channel's own key: only aitre and that upstream know it, and it names one task. The body (the
upstream's task object) is not trusted: a valid call only makes the task due for a poll now, and
the poll reads the upstream's state as usual; polling stays the fallback when callbacks are lost.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from aitre.adapters.mj_proxy import callback_token
from aitre.api.common import app_state, read_body
from aitre.api.mj.common import KIND, is_task_id, task_service
from aitre.errors import ApiError
from aitre.jsonresp import json_response

BODY_LIMIT = 1024 * 1024


def _not_found() -> ApiError:
    return ApiError(404, "No such task.", code="task_not_found")


async def callback(request: Request) -> Response:
    state = app_state(request)
    task_id = request.query_params.get("task", "")
    token = request.query_params.get("token", "")
    await read_body(request, BODY_LIMIT)  # bounded; its content is read from the upstream by the poll
    if not is_task_id(task_id) or not token:
        raise _not_found()
    tasks = task_service(state)
    task = await tasks.get(task_id)
    if task is None or task.kind != KIND or task.channel_id is None:
        raise _not_found()
    channel = next((c for c in state.catalog.router.channels if c.id == task.channel_id), None)
    if channel is None or not hmac.compare_digest(token, callback_token(channel, task.id)):
        raise _not_found()  # the same answer as an unknown task: a wrong token learns nothing
    polled = await tasks.poll_now(task.id)
    return json_response({"ok": True, "polled": polled})
