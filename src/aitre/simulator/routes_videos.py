"""OpenAI's video API: `POST /v1/videos` (multipart or JSON), `GET /v1/videos` (a cursor page),
`GET` and `DELETE /v1/videos/{id}`, `GET /v1/videos/{id}/content?variant=video|thumbnail|spritesheet`
and `POST /v1/videos/{id}/remix`. Tasks move on the clock of `video_tasks`; the mp4 is made when
someone first sees the task completed or asks for its content."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aitre.simulator.common import (
    CutBody,
    SimEvent,
    SimState,
    authorized,
    bad_request,
    begin,
    error,
    json_answer,
    json_body,
    sim,
    unauthorized,
    unknown_model,
)
from aitre.simulator.faults import Fault
from aitre.simulator.files import FileStore, media_type
from aitre.simulator.forms import read_form
from aitre.simulator.png import BadImage, open_image
from aitre.simulator.video import Clip
from aitre.simulator.video_params import Invalid, UnknownModel, VideoJob, image_bytes, parse, reference_text
from aitre.simulator.video_tasks import Clock, VideoTask

MAX_UPLOAD = 32 * 1024 * 1024
VARIANTS = ("video", "thumbnail", "spritesheet")
_LIST_LIMIT = 100


def _not_found(video_id: str) -> Response:
    return error(404, f"Video with id '{video_id}' not found.", "video_not_found")


def _poll_hint(task: VideoTask, response: Response) -> Response:
    """The SDK's `poll()` waits this long between retrieves while the task runs."""
    if task.clock.phase()[0] in ("queued", "in_progress"):
        response.headers["openai-poll-after-ms"] = str(max(1, round(task.clock.step * 1000)))
    return response


async def _create_fields(request: Request) -> tuple[Mapping[str, Any], bytes | None] | Response:
    """The fields of a create request and its uploaded reference image, if any."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await read_form(request, MAX_UPLOAD)
        if isinstance(form, Response):
            return form
        uploads = form.uploads("input_reference")
        return form.fields, uploads[0].data if uploads else None
    body = await json_body(request)
    return body if isinstance(body, Response) else (body, None)


def _checked_job(
    state: SimState, fields: Mapping[str, Any], upload: bytes | None
) -> tuple[VideoJob, bytes | None]:
    """Parse and check a create request (in a worker thread: it decodes the reference image)."""
    job = parse(fields, state.videos.settings.any_size)
    reference = upload
    if reference is None:
        text = reference_text(fields)
        reference = image_bytes(text, state.files) if text is not None else None
    if reference is not None:
        try:
            open_image(reference)
        except BadImage as exc:
            raise Invalid(f"Invalid image in `input_reference`: {exc}.", "input_reference") from None
    return job, reference


def _task(state: SimState, job: VideoJob, reference: bytes | None, seed: str = "", **kw: Any) -> VideoTask:
    settings = state.videos.settings
    width, height = settings.render_size(job.width, job.height)
    clip = Clip(job.prompt, width, height, job.seconds, f"{job.model}\x00{seed}", reference)
    clock = Clock.for_prompt(job.prompt, settings.step_seconds)
    video_id = f"video_{secrets.token_hex(16)}"
    return VideoTask(video_id, job.model, job.prompt, job.seconds, job.width, job.height, clip, clock, **kw)


async def create(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    got = await _create_fields(request)
    if isinstance(got, Response):
        return got
    state = sim(request)
    try:
        job, reference = await asyncio.to_thread(_checked_job, state, *got)
    except UnknownModel as exc:
        return unknown_model(exc)
    except Invalid as exc:
        return bad_request(str(exc), exc.param)
    started = await begin(request, job.model, False)
    if isinstance(started, Response):
        return started
    ev, fault = started
    task = _task(state, job, reference)
    state.videos.add(task)
    return _poll_hint(task, json_answer(task.as_video(), fault, ev))


async def _open(request: Request) -> tuple[VideoTask, SimEvent, Fault] | Response:
    """The prelude of the routes on one video: the key, the fault, the task."""
    if not authorized(request):
        return unauthorized()
    video_id = request.path_params["video_id"]
    task = sim(request).videos.get(video_id)
    started = await begin(request, task.model if task else "", False)
    if isinstance(started, Response):
        return started
    ev, fault = started
    if task is None:
        ev.end("completed")
        return _not_found(video_id)
    return task, ev, fault


async def retrieve(request: Request) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    task, ev, fault = opened
    video = task.as_video()
    if video["status"] == "completed" and task.made is None:
        # Start the render now, so that the download that follows finds it made or under way.
        sim(request).spawn(_prefetch(task, sim(request).files))
    return _poll_hint(task, json_answer(video, fault, ev))


async def _prefetch(task: VideoTask, store: FileStore) -> None:
    # A failed render is reported by the download that asks for it again.
    with contextlib.suppress(Exception):
        await task.files(store)


async def delete(request: Request) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    task, ev, fault = opened
    sim(request).videos.delete(task.id)
    return json_answer({"id": task.id, "object": "video.deleted", "deleted": True}, fault, ev)


def _list_params(request: Request) -> tuple[str | None, int, bool] | Response:
    query = request.query_params
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _LIST_LIMIT:
        return bad_request(f"`limit` must be an integer from 1 to {_LIST_LIMIT}.", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        return bad_request("`order` must be `asc` or `desc`.", "order")
    return query.get("after") or None, int(raw_limit), order == "desc"


async def list_videos(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    params = _list_params(request)
    if isinstance(params, Response):
        return params
    after, limit, newest_first = params
    started = await begin(request, "", False)
    if isinstance(started, Response):
        return started
    ev, fault = started
    try:
        tasks, has_more = sim(request).videos.page(after, limit, newest_first)
    except KeyError:
        ev.end("completed")
        return bad_request(f"`after`: no video with id '{after}'.", "after")
    data = [t.as_video() for t in tasks]
    page = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
    return json_answer(page, fault, ev)


async def content(request: Request) -> Response:
    variant = request.query_params.get("variant", "video")
    if variant not in VARIANTS:
        if not authorized(request):
            return unauthorized()
        return bad_request(f"`variant` must be one of: {', '.join(VARIANTS)}.", "variant")
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    task, ev, fault = opened
    status = task.clock.phase()[0]
    if status != "completed":
        ev.end("completed")
        message = f"Video '{task.id}' is {status}: its content is there once it has completed."
        return bad_request(message, None, "video_not_ready")
    store = sim(request).files
    data, name = None, ""
    for _ in range(2):  # a second time if newer files pushed these out of the store meanwhile
        try:
            name = (await task.files(store)).name(variant)
        except Exception as exc:  # a render that failed is this download's failure, not the server's
            ev.end("fault")
            return error(500, f"The video could not be made: {exc}", "video_render_failed")
        data = store.get(name)
        if data is not None:
            break
    if data is None:
        ev.end("fault")
        return error(503, "The simulator's file store is too busy to keep this video; try again.")
    if fault.truncate >= 0:
        ev.end("fault")
        return CutBody(data, media_type(name))
    ev.end("completed")
    return Response(data, media_type=media_type(name))


async def remix(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return bad_request("`prompt` is required and must be a non-empty string.", "prompt")
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    source, ev, fault = opened
    if source.clock.phase()[0] != "completed":
        ev.end("completed")
        return bad_request(f"Video '{source.id}' has not completed: only completed videos can be remixed.")
    state = sim(request)
    job = VideoJob(source.model, prompt, source.seconds, source.width, source.height)
    task = _task(state, job, source.clip.reference, seed=source.prompt, remixed_from=source.id)
    state.videos.add(task)
    return _poll_hint(task, json_answer(task.as_video(), fault, ev))


def video_routes() -> list[BaseRoute]:
    return [
        Route("/v1/videos", create, methods=["POST"]),
        Route("/v1/videos", list_videos, methods=["GET"]),
        Route("/v1/videos/{video_id}", retrieve, methods=["GET"]),
        Route("/v1/videos/{video_id}", delete, methods=["DELETE"]),
        Route("/v1/videos/{video_id}/content", content, methods=["GET"]),
        Route("/v1/videos/{video_id}/remix", remix, methods=["POST"]),
    ]
