"""Black Forest Labs' asynchronous API: `POST /v1/{model}` submits, `GET /v1/get_result?id=`
polls. A task answers `Pending` for the first few polls (`SimState.pending_polls`), then
`Ready` with a link to the image; prompts containing `moderate-me` or `fail-me` end in
`Request Moderated` or `Error`."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator import bfl, catalog
from aitre.simulator.bfl import FluxJob, bfl_error, validation_error
from aitre.simulator.bfl_tasks import BflTask
from aitre.simulator.common import SimState, authorized, begin, json_answer, sim, sim_url
from aitre.simulator.png import Canvas, render


def _key_ok(request: Request) -> bool:
    return authorized(request, request.headers.get("x-key"))


def _denied() -> Response:
    return bfl_error(401, "Invalid or missing API key (send it in the x-key header).")


def _final_status(prompt: str) -> str:
    if "moderate-me" in prompt:
        return "Request Moderated"
    if "fail-me" in prompt:
        return "Error"
    return "Ready"


async def _render(state: SimState, job: FluxJob, task: BflTask) -> str:
    canvas = Canvas(job.final_prompt, job.width, job.height, seed=f"{job.model}\x00{job.seed}", fmt=job.fmt)
    data = await asyncio.to_thread(render, canvas, job.source, None, job.extras)
    task.ended = time.time()
    return state.files.save(data, "jpg" if job.fmt == "jpeg" else "png")


async def submit(request: Request) -> Response:
    model = request.path_params["model"]
    if not _key_ok(request):
        return _denied()
    if model not in catalog.BFL_MODELS:
        return bfl_error(404, f"Unknown endpoint /v1/{model}.")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return validation_error("body", "the body is not valid JSON")
    if not isinstance(body, dict):
        return validation_error("body", "the body must be a JSON object")
    try:
        job = await asyncio.to_thread(bfl.parse, body, model)
    except bfl.Invalid as exc:
        return validation_error(exc.field, str(exc))
    started = await begin(request, model, False, bfl_error)
    if isinstance(started, Response):
        return started
    ev, fault = started
    state = sim(request)
    task_id = str(uuid.uuid4())
    task = BflTask(
        task_id,
        model,
        job.final_prompt,
        job.seed,
        _final_status(job.prompt),
        time.time(),
        state.pending_polls,
    )
    if task.final_status == "Ready":
        task.image = state.spawn(_render(state, job, task))
    state.tasks.add(task)
    answer = {
        "id": task_id,
        "polling_url": sim_url(request, f"/v1/get_result?id={task_id}"),
        "cost": bfl.COST[model],
    }
    return json_answer(answer, fault, ev)


def _status(task: BflTask, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": task.id, "status": status, "result": None, "progress": None, **extra}


async def _result(request: Request, task: BflTask) -> dict[str, Any]:
    task.polls += 1
    if task.polls <= task.pending_polls:
        return _status(task, "Pending", progress=(task.polls - 1) / task.pending_polls)
    if task.final_status == "Request Moderated":
        reasons = ["Simulated moderation (the prompt asked for it)."]
        return _status(task, task.final_status, details={"Moderation Reasons": reasons})
    if task.final_status != "Ready" or task.image is None:
        return _status(task, "Error", details={"error": "Simulated failure (the prompt asked for it)."})
    try:
        name = await task.image
    except Exception as exc:  # a render that failed is the task's failure, not the poll's
        return _status(task, "Error", details={"error": str(exc)})
    result = {
        "sample": sim_url(request, f"/files/{name}"),
        "seed": task.seed,
        "prompt": task.prompt,
        "start_time": task.started,
        "end_time": task.ended,
    }
    return {"id": task.id, "status": "Ready", "result": result, "progress": 1.0}


async def get_result(request: Request) -> Response:
    if not _key_ok(request):
        return _denied()
    task_id = request.query_params.get("id")
    if not task_id:
        return validation_error("id", "field required", "query")
    task = sim(request).tasks.get(task_id)
    started = await begin(request, task.model if task else "", False, bfl_error)
    if isinstance(started, Response):
        return started
    ev, fault = started
    if task is None:
        return json_answer({"id": task_id, "status": "Task not found"}, fault, ev)
    return json_answer(await _result(request, task), fault, ev)
