"""OpenAI's video API: `POST /v1/videos` (JSON or multipart), `GET /v1/videos` (a cursor page),
`GET` and `DELETE /v1/videos/{video_id}`, `GET /v1/videos/{video_id}/content` and
`POST /v1/videos/{video_id}/remix`, answered from aitre's `video` tasks.

A caller sees only its user's own videos: another user's id is answered exactly like one that
does not exist (404). A deleted video is gone for its owner (the row and its books stay for the
operator). What each case answers: docs/video.md.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from aitre.accounts.auth import Caller
from aitre.accounts.policy import check_expiry, check_ip
from aitre.api.common import app_state, authenticate, client_ip, header, read_body, read_form
from aitre.api.jsonbody import parse_object
from aitre.api.media import serve
from aitre.errors import ApiError, bad_request
from aitre.jsonresp import json_response
from aitre.relay.job import UploadedFile
from aitre.state import AppState
from aitre.tasks.protocol import SUCCEEDED, TaskFilter, TaskService, TaskView
from aitre.video import params as checks
from aitre.video.create import create_video_task
from aitre.video.ids import is_video_id
from aitre.video.models import KIND
from aitre.video.render import VARIANTS, media_of, status_of, video_object

LIST_LIMIT = 100
CONTENT_CACHE = "private, max-age=86400"
_PARSE_INLINE = 256 * 1024


async def _begin(request: Request) -> tuple[AppState, Caller, TaskService]:
    state = app_state(request)
    caller = await authenticate(request, state)
    check_expiry(caller)
    check_ip(caller, client_ip(request))
    tasks = getattr(state, "tasks", None)
    if tasks is None:
        raise ApiError(503, "The task engine is not running.", type="server_error", code="tasks_unavailable")
    return state, caller, tasks


def _limits(state: AppState) -> checks.Limits:
    s = state.settings
    return checks.Limits(prompt_chars=s.video_max_prompt_chars, image_bytes=s.video_max_image_bytes)


def _body_limit(state: AppState) -> int:
    """A create carries a prompt and at most one image (base64 in JSON: a third more)."""
    s = state.settings
    return min(s.max_body_bytes, s.video_max_image_bytes * 4 // 3 + s.video_max_prompt_chars * 4 + 256 * 1024)


def _fetch(state: AppState) -> checks.Fetch:
    async def fetch(url: str, param: str) -> bytes:
        try:
            return (
                await state.fetcher.fetch(url, param, max_bytes=state.settings.video_max_image_bytes)
            ).data
        except ApiError as exc:
            exc.param = exc.param or param  # a data URL's refusal names no field of its own
            raise

    return fetch


def _answer(state: AppState, task: TaskView) -> Response:
    response = json_response(video_object(task, state.settings.media_retention_days))
    if status_of(task) in ("queued", "in_progress"):
        # The SDK's `poll()` waits this long between retrieves.
        hint = max(100, min(10_000, int(state.settings.task_poll_min_seconds * 1000)))
        response.headers["openai-poll-after-ms"] = str(hint)
    return response


def _not_found(video_id: str) -> ApiError:
    shown = f" '{video_id}'" if is_video_id(video_id) else ""
    return ApiError(404, f"No video{shown} found.", code="video_not_found", param="video_id")


async def _video(tasks: TaskService, caller: Caller, video_id: str) -> TaskView:
    """The caller's own video (not deleted); 404 for anything else, another user's included."""
    task = await tasks.get(video_id, caller.user_id) if is_video_id(video_id) else None
    if task is None or task.kind != KIND or task.deleted_at is not None:
        raise _not_found(video_id)
    return task


async def _json(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}  # nothing sent: answered by the first required field's check (`prompt`)
    if len(raw) < _PARSE_INLINE:
        return parse_object(raw)
    return await asyncio.to_thread(parse_object, raw)  # megabytes of base64: off the event loop


async def _form(request: Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for name, value in await read_form(request, limit):
        if isinstance(value, UploadedFile):
            if name in files:
                raise bad_request(f"The form has two `{name}` files; send one.", param=name)
            files[name] = value.data
        else:
            fields[name] = value
    return fields, files


def _urlencoded(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=64
        )
    except (UnicodeDecodeError, ValueError):
        raise bad_request("Malformed form body.") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise bad_request(f"The form has the field `{name}` twice; send it once.", param=name)
        fields[name] = value
    return fields


# --- routes ---------------------------------------------------------------------------------------
async def create(request: Request) -> Response:
    state, caller, _ = await _begin(request)
    limit = _body_limit(state)
    ctype = header(request, b"content-type") or ""
    if ctype.startswith("multipart/form-data"):
        fields, files = await _form(request, limit)
        params = await checks.from_form(fields, files, _limits(state), _fetch(state))
    elif ctype.startswith("application/x-www-form-urlencoded"):
        fields = _urlencoded(await read_body(request, limit))
        params = await checks.from_form(fields, {}, _limits(state), _fetch(state))
    else:
        params = await checks.from_json(await _json(request, limit), _limits(state), _fetch(state))
    task = await create_video_task(state, caller, params)
    return _answer(state, task)


async def retrieve(request: Request) -> Response:
    state, caller, tasks = await _begin(request)
    return _answer(state, await _video(tasks, caller, request.path_params["video_id"]))


async def list_videos(request: Request) -> Response:
    state, caller, tasks = await _begin(request)
    query = request.query_params
    raw_limit = query.get("limit", "20")
    if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 3) or not (
        1 <= int(raw_limit) <= LIST_LIMIT
    ):
        raise bad_request(f"`limit` must be an integer from 1 to {LIST_LIMIT}.", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("`order` must be `asc` or `desc`.", param="order")
    after: TaskView | None = None
    if query.get("after"):
        after_id = query["after"]
        # A deleted video still marks its place (read as an admin would, then checked as the
        # caller's): a client paging while it deletes goes on.
        after = await tasks.get(after_id) if is_video_id(after_id) else None
        if after is None or after.kind != KIND or after.user_id != caller.user_id:
            raise bad_request("`after` is not the id of one of your videos.", param="after")
    filters = TaskFilter(user_id=caller.user_id, kind=KIND, deleted=False)
    found, more = await tasks.seek(filters, after, int(raw_limit), ascending=order == "asc")
    retention = state.settings.media_retention_days
    data = [video_object(t, retention) for t in found]
    page = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }
    return json_response(page)


async def delete(request: Request) -> Response:
    state, caller, tasks = await _begin(request)
    task = await _video(tasks, caller, request.path_params["video_id"])
    try:
        task = await tasks.delete(task.id, caller.user_id)
    except ApiError as exc:
        if exc.status == 404:
            raise _not_found(task.id) from None
        raise
    names = [str(m["name"]) for m in task.media if isinstance(m, dict) and m.get("name")]
    reference = task.request.get("input_reference")
    if isinstance(reference, dict) and reference.get("media"):
        names.append(str(reference["media"]))
    for name in names:
        await state.media.delete(name)
    return json_response({"id": task.id, "object": "video.deleted", "deleted": True})


async def content(request: Request) -> Response:
    state, caller, tasks = await _begin(request)
    variant = request.query_params.get("variant", "video")
    if variant not in VARIANTS:
        raise bad_request(f"`variant` must be one of: {', '.join(VARIANTS)}.", param="variant")
    task = await _video(tasks, caller, request.path_params["video_id"])
    if task.status != SUCCEEDED:
        raise bad_request(
            f"Video '{task.id}' is {status_of(task)}: its content is there once it has completed.",
            code="video_not_ready",
        )
    kept = media_of(task, variant)
    if kept is None:
        raise ApiError(404, f"This video has no {variant}.", param="variant", code="variant_not_available")
    try:
        return await serve(request, state.media, str(kept["name"]), CONTENT_CACHE)
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(404, "This video's files have expired.", code="video_expired") from None
        raise


async def remix(request: Request) -> Response:
    state, caller, tasks = await _begin(request)
    body = await _json(request, state.settings.video_max_prompt_chars * 4 + 64 * 1024)
    prompt = checks.remix_prompt(body, _limits(state))
    source = await _video(tasks, caller, request.path_params["video_id"])
    if source.status != SUCCEEDED:
        raise bad_request(
            f"Video '{source.id}' is {status_of(source)}: only completed videos can be remixed.",
            code="video_not_ready",
        )
    request_doc = source.request
    params = checks.VideoParams(
        model=source.model,
        prompt=prompt,
        seconds=str(request_doc.get("seconds") or "4"),
        size=str(request_doc.get("size") or "720x1280"),
        upstream_model=str(request_doc.get("model") or source.model),
        via="videos",  # a remix is `/v1/videos`' own: a video made by chat has none upstream
    )
    try:
        task = await create_video_task(state, caller, params, parent=source)
    except ApiError as exc:
        if exc.status == 503 and exc.code == "no_available_channel":
            raise bad_request(
                "The channel that made this video cannot remix it now.", code="remix_unavailable"
            ) from None
        raise
    return _answer(state, task)
