"""midjourney-proxy's task queries (`fetch`, `list-by-condition`, `image-seed`) and the pictures
behind `imageUrl`."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator.common import SimEvent, has_keys, json_answer
from aitre.simulator.faults import Fault
from aitre.simulator.mj import FAILURE, SUCCESS
from aitre.simulator.mj_http import BAD_STATE, NO_TASK, mj_authorized, mj_state, open_mj, read_body, vo


async def _open_query(request: Request) -> tuple[SimEvent, Fault] | Response:
    if not mj_authorized(request):
        return Response(status_code=401)
    return await open_mj(request, "")


async def fetch(request: Request) -> Response:
    started = await _open_query(request)
    if isinstance(started, Response):
        return started
    ev, fault = started
    state = mj_state(request)
    task = state.book.get(request.path_params["task_id"])
    if task is None:
        ev.end("completed")
        return Response(b"", media_type="application/json")  # Spring's answer for a null task
    return json_answer(task.as_json(state.now()), fault, ev)


async def list_by_condition(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    started = await open_mj(request, "")
    if isinstance(started, Response):
        return started
    ev, fault = started
    state = mj_state(request)
    ids = body.get("ids")
    now = state.now()
    found = [state.book.get(i) for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    return json_answer([t.as_json(now) for t in found if t is not None], fault, ev)


async def image_seed(request: Request) -> Response:
    started = await _open_query(request)
    if isinstance(started, Response):
        return started
    ev, fault = started
    state = mj_state(request)
    task = state.book.get(request.path_params["task_id"])
    if task is None:
        return json_answer(vo(3, NO_TASK), fault, ev, status=404)
    if task.picture is None or task.phase(state.now()).status != SUCCESS:
        return json_answer(vo(4, BAD_STATE), fault, ev, status=400)
    return json_answer(vo(1, "成功", task.seed()), fault, ev)


async def get_image(request: Request) -> Response:
    """The task's picture, like a Discord CDN link: no key needed, an unguessable name instead.
    `?progress=N` gives the blurred preview linked while the task runs."""
    if not has_keys(request):  # fail closed, like every other route
        return Response(b"Unauthorized", 401, media_type="text/plain")
    task_id, _, token = request.path_params["name"].removesuffix(".png").partition("-")
    state = mj_state(request)
    task = state.book.get(task_id)
    if (
        task is None
        or not hmac.compare_digest(token.encode(), task.image_token.encode())
        or task.picture is None
        or task.modal
        or task.phase(state.now()).status == FAILURE
    ):
        return Response(b"Not Found", 404, media_type="text/plain")
    progress = request.query_params.get("progress", "")
    if progress.isdigit() and int(progress) < 100:
        data = await asyncio.to_thread(state.renderer.preview, task.picture, int(progress))
    else:
        data = await asyncio.to_thread(state.renderer.png, task.picture)
    return Response(data, media_type="image/png", headers={"cache-control": "public, max-age=86400"})
