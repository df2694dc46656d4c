"""Task queries: `GET /mj/task/{id}/fetch`, `GET /mj/task/{id}/image-seed`, `GET /mj/task/list`,
`POST /mj/task/list-by-condition`. A caller sees only its user's own tasks; another user's task
is answered exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aitre.adapters import mj_proxy_wire as wire
from aitre.adapters.base import Retryable
from aitre.api.common import read_json_object
from aitre.api.mj.common import KIND, begin, is_task_id
from aitre.errors import ApiError, bad_request
from aitre.jsonresp import json_response
from aitre.mj import answers
from aitre.mj.answers import answer
from aitre.mj.tasks import render
from aitre.tasks.protocol import SUCCEEDED, TaskFilter

MAX_IDS = 100
LIST_MAX = 100


async def fetch(request: Request) -> Response:
    task_id = request.scope["path_params"]["id"]
    state, caller, tasks = await begin(request)
    task = await tasks.get(task_id, caller.user_id) if is_task_id(task_id) else None
    if task is None or task.kind != KIND:
        # midjourney-proxy answers an unknown id with 200 and an empty body; a JSON error says more
        raise ApiError(404, f"No task {task_id}.", code="task_not_found", param="id")
    return json_response(render(task, state.media))


async def image_seed(request: Request) -> Response:
    task_id = request.scope["path_params"]["id"]
    state, caller, tasks = await begin(request)
    task = await tasks.get(task_id, caller.user_id) if is_task_id(task_id) else None
    if task is None or task.kind != KIND:
        return answer(answers.NOT_FOUND, "The task does not exist.")
    if task.status != SUCCEEDED or not task.upstream_id or task.channel_id is None:
        return answer(answers.VALIDATION, "The task has no picture yet.")
    seed = task.result.get("seed")
    if isinstance(seed, str) and seed:
        return answer(answers.SUBMITTED, "Success", seed)
    channel = next((c for c in state.catalog.router.channels if c.id == task.channel_id), None)
    if channel is None:
        return answer(answers.FAILURE, "The channel that ran this task is gone.")
    try:
        found = await wire.image_seed(state, channel, task.upstream_id)
    except Retryable as exc:
        return answer(answers.FAILURE, exc.error.message)
    return answer(
        found.code, found.description or ("Success" if found.code == 1 else "Failure"), found.result
    )


async def list_by_condition(request: Request) -> Response:
    state, caller, tasks = await begin(request)
    body = await read_json_object(request, 1024 * 1024)
    ids = body.get("ids")
    if ids is None:
        ids = []
    if not isinstance(ids, list) or not all(
        isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids
    ):
        raise bad_request("`ids` must be a list of task ids.", param="ids")
    if len(ids) > MAX_IDS:
        raise bad_request(f"At most {MAX_IDS} ids at once.", param="ids")
    wanted = [str(i) for i in ids if is_task_id(str(i))]
    found = await tasks.get_many(wanted, caller.user_id) if wanted else []
    return json_response([render(t, state.media) for t in found if t.kind == KIND])


async def list_own(request: Request) -> Response:
    """The caller's newest tasks (midjourney-proxy lists every task; aitre only the caller's)."""
    state, caller, tasks = await begin(request)
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        raise bad_request("`limit` must be a number.", param="limit") from None
    limit = max(1, min(LIST_MAX, limit))
    found, _ = await tasks.list_tasks(TaskFilter(user_id=caller.user_id, kind=KIND), 1, limit)
    body: list[dict[str, Any]] = [render(t, state.media) for t in found]
    return json_response(body)
