"""midjourney-proxy's HTTP API (`/mj/...`), as the gateway's MJ channels call it upstream.

Answers follow the proxy (novicezk's, and the "plus" API of trueai-org's fork): submits answer
HTTP 200 with `{code, description, result, properties}` (1 submitted, 21 waiting for a modal,
22 queued, 23 queue full, 24 banned prompt, 4 bad input; 3 with HTTP 404 when the task named
is unknown); a wrong or missing `mj-api-secret` is HTTP 401 with no body; a body that is not
JSON is Spring's 400 error object; `fetch` of an unknown id is HTTP 200 with an empty body.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from aitre.simulator import mj_notify
from aitre.simulator.common import json_answer, sim_url
from aitre.simulator.mj import INSTANCE_ID, SUCCESS, MjTask
from aitre.simulator.mj_actions import modal_picture, plan
from aitre.simulator.mj_http import (
    BAD_STATE,
    NO_TASK,
    mj_state,
    open_mj,
    read_body,
    read_images,
    reply,
    str_field,
    vo,
)
from aitre.simulator.mj_images import Grid, Picture, Swap, Upload, colour_name, read_upload
from aitre.simulator.mj_text import Marks, describe_prompts, digest, numbered, read_marks, shorten, tile_size
from aitre.simulator.routes_mj_tasks import fetch, get_image, image_seed, list_by_condition

SUBMITTED_OK = "提交成功"
BAD_PARAMS = "参数错误"
BAD_BASE64 = "base64格式错误"
MAX_REFS = 10  # reference images an imagine may carry
BLEND_SIZES = {"PORTRAIT": (2, 3), "SQUARE": (1, 1), "LANDSCAPE": (3, 2)}


@dataclass(slots=True)
class NewTask:
    action: str
    prompt: str
    prompt_en: str
    description: str = ""
    picture: Picture | None = None
    buttons: str = "grid"
    final_prompt: str | None = None
    custom_id: str | None = None
    modal: str = ""


def _bot(body: dict[str, Any]) -> str:
    return "NIJI_JOURNEY" if body.get("botType") == "NIJI_JOURNEY" else "MID_JOURNEY"


def _refused(marks: Marks, prompt_en: str) -> dict[str, Any] | None:
    if marks.banned:
        return vo(24, "可能包含敏感词", promptEn=prompt_en, bannedWord="--sim-banned")
    if marks.queue_full:
        return vo(23, "队列已满，请稍后尝试")
    return None


async def _open_and_submit(
    request: Request,
    body: dict[str, Any],
    model: str,
    marks: Marks,
    prompt_en: str,
    new: NewTask | Callable[[str], NewTask],
) -> Response:
    """The common tail of a submit: the request logged and its HTTP faults applied, then refused
    (banned, queue full) or the task made and answered."""
    started = await open_mj(request, model)
    if isinstance(started, Response):
        return started
    ev, fault = started
    marks = marks.add_fault(fault)
    refused = _refused(marks, prompt_en)
    if refused:
        return json_answer(refused, fault, ev)
    _, answer = _submit(request, body, new, marks)
    return json_answer(answer, fault, ev)


def _submit(
    request: Request,
    body: dict[str, Any],
    new: NewTask | Callable[[str], NewTask],
    marks: Marks,
    bot_type: str | None = None,
    task_id: str | None = None,
) -> tuple[MjTask, dict[str, Any]]:
    """Create the task (`new` may need its id to name its picture) and the submit answer."""
    state = mj_state(request)
    now = state.now()
    task_id = task_id or state.book.new_id(now)
    spec = new(task_id) if callable(new) else new
    hook = str_field(body, "notifyHook") or None
    task = MjTask(
        task_id,
        spec.action,
        spec.prompt,
        spec.prompt_en,
        spec.description or f"/{spec.action.lower()} {spec.prompt}",
        sys.intern(sim_url(request, "")),  # one string for the thousands of tasks that share it
        now,
        state.step_seconds,
        state.steps,
        picture=spec.picture,
        buttons=spec.buttons,
        state=body.get("state") if isinstance(body.get("state"), str) else None,
        notify_hook=hook,
        custom_id=spec.custom_id,
        bot_type=bot_type or _bot(body),
        final_prompt=spec.final_prompt,
        fail_reason=marks.fail,
        stuck=marks.stuck,
        no_callback=marks.no_callback,
        modal=spec.modal,
    )
    state.book.add(task)
    where = {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
    if spec.modal:
        return task, vo(21, "Waiting for window confirm", task_id, finalPrompt=spec.prompt_en, remix=True)
    mj_notify.start(state, task)
    if marks.queued:
        text = f"排队中，前面还有{marks.queued}个任务"
        return task, vo(22, text, task_id, numberOfQueues=marks.queued, **where)
    return task, vo(1, SUBMITTED_OK, task_id, **where)


async def imagine(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    prompt = str_field(body, "prompt")
    if not prompt:
        return reply(vo(4, "prompt不能为空"))
    refs = body.get("base64Array") or []
    if isinstance(refs, list) and isinstance(body.get("base64"), str):
        refs = [*refs, body["base64"]]  # the older API's single reference image
    uploads = await read_images(refs) if isinstance(refs, list) and len(refs) <= MAX_REFS else None
    if uploads is None:
        return reply(vo(4, BAD_BASE64))
    started = await open_mj(request, "mj_imagine")
    if isinstance(started, Response):
        return started
    ev, fault = started
    marks = read_marks(prompt).add_fault(fault)
    refused = _refused(marks, prompt)
    if refused:
        return json_answer(refused, fault, ev)
    w, h = tile_size(prompt)
    inputs = tuple(data for data, _ in uploads)
    _, answer = _submit(
        request,
        body,
        lambda key: NewTask("IMAGINE", prompt, prompt, picture=Grid(key, prompt, w, h, inputs=inputs)),
        marks,
    )
    return json_answer(answer, fault, ev)


def _describe_text(salt: str, data: bytes, rgb: tuple[int, int, int]) -> str:
    size = _png_size(data)
    return numbered(describe_prompts(digest(salt.encode() + data), colour_name(rgb), *size))


def _png_size(data: bytes) -> tuple[int, int]:
    # PNG's IHDR: width and height are the big-endian words at bytes 16..24.
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def describe(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    b64 = str_field(body, "base64")
    if not b64:
        return reply(vo(4, "base64不能为空"))
    uploads = await read_images([b64])
    if not uploads:
        return reply(vo(4, BAD_BASE64))
    (data, rgb) = uploads[0]

    def new(key: str) -> NewTask:
        text = _describe_text("", data, rgb)
        return NewTask("DESCRIBE", text, text, f"/describe {key}.png", Upload(key, data), "describe", text)

    return await _open_and_submit(request, body, "mj_describe", Marks(), "", new)


async def blend(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    images = body.get("base64Array")
    if not isinstance(images, list) or not 2 <= len(images) <= 5:
        return reply(vo(4, "base64List参数错误"))
    dims = body.get("dimensions") or "SQUARE"
    if not isinstance(dims, str) or dims not in BLEND_SIZES:
        return reply(vo(4, "dimensions参数错误"))
    uploads = await read_images(images)
    if uploads is None:
        return reply(vo(4, BAD_BASE64))
    w, h = tile_size(f"--ar {BLEND_SIZES[dims][0]}:{BLEND_SIZES[dims][1]}")
    inputs = tuple(data for data, _ in uploads)

    def new(key: str) -> NewTask:
        grid = Grid(key, "", w, h, "blend", inputs=inputs)
        return NewTask("BLEND", "", "", f"/blend {key} {len(inputs)}", grid)

    return await _open_and_submit(request, body, "mj_blend", Marks(), "", new)


async def shorten_prompt(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    prompt = str_field(body, "prompt")
    if not prompt:
        return reply(vo(4, "prompt不能为空"))
    task = NewTask("SHORTEN", prompt, prompt, buttons="shorten", final_prompt=shorten(prompt))
    return await _open_and_submit(request, body, "mj_shorten", read_marks(prompt), prompt, task)


async def swap_face(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    source, target = str_field(body, "sourceBase64"), str_field(body, "targetBase64")
    if not source or not target:
        if body.get("sourceUrl") or body.get("targetUrl"):
            return reply(vo(4, "The simulator takes sourceBase64 and targetBase64, not URLs."))
        return reply(vo(4, BAD_PARAMS))
    uploads = await read_images([source, target])
    if uploads is None:
        return reply(vo(4, BAD_BASE64))
    face, back = uploads[0][0], uploads[1][0]
    return await _open_and_submit(request, body, "swap_face", Marks(), "", _swap_task(face, back))


def _swap_task(face: bytes, back: bytes) -> Callable[[str], NewTask]:
    return lambda key: NewTask("SWAP_FACE", "", "", f"/swap {key}", Swap(key, face, back), "")


def _parent(request: Request, task_id: str) -> MjTask | Response:
    task = mj_state(request).book.get(task_id)
    if task is None:
        return reply(vo(3, NO_TASK), 404)
    return task


async def action(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    task_id, custom_id = str_field(body, "taskId"), str_field(body, "customId")
    if not task_id or not custom_id:
        return reply(vo(4, BAD_PARAMS))
    parent = _parent(request, task_id)
    if isinstance(parent, Response):
        return parent
    state = mj_state(request)
    if parent.phase(state.now()).status != SUCCESS:
        return reply(vo(4, BAD_STATE))
    key = state.book.new_id(state.now())
    step = plan(parent, custom_id, key)
    if step is None:
        return reply(vo(4, f"customId {custom_id} is not a button of task {task_id}"))
    model = "mj_custom_zoom" if step.modal == "zoom" else f"mj_{step.action.lower()}"
    started = await open_mj(request, model)
    if isinstance(started, Response):
        return started
    ev, fault = started
    if step.bookmark:
        return json_answer(vo(1, "Success", parent.id), fault, ev)
    prompt = step.prompt if step.prompt is not None else parent.prompt
    prompt_en = step.prompt if step.prompt is not None else parent.prompt_en
    if step.modal == "inpaint":
        prompt = prompt_en = ""  # the region's prompt comes with the modal
    marks = read_marks(parent.prompt_en).add_fault(fault)
    refused = _refused(marks, prompt_en)
    if refused:
        return json_answer(refused, fault, ev)
    new = NewTask(step.action, prompt, prompt_en, f"/up {parent.id} {step.label}", step.picture, step.buttons)
    new.custom_id, new.modal = custom_id, step.modal
    if step.describe_again and isinstance(step.picture, Upload):
        new.final_prompt = new.prompt = new.prompt_en = await _again(key, step.picture)
        new.picture = Upload(key, step.picture.data)
    _, answer = _submit(request, body, new, marks, parent.bot_type, key)
    return json_answer(answer, fault, ev)


async def _again(key: str, upload: Upload) -> str:
    data, rgb = await asyncio.to_thread(read_upload, upload.data)
    return _describe_text(key, data, rgb)


async def modal(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    task_id, prompt = str_field(body, "taskId"), str_field(body, "prompt")
    if not task_id or not prompt:
        return reply(vo(4, BAD_PARAMS))
    task = _parent(request, task_id)
    if isinstance(task, Response):
        return task
    if not task.modal:
        return reply(vo(4, BAD_STATE))
    mask = None
    if task.modal == "inpaint":
        given = str_field(body, "maskBase64")
        if not given:
            return reply(vo(4, "maskBase64不能为空"))
        masks = await read_images([given])
        if not masks:
            return reply(vo(4, BAD_BASE64))
        mask = masks[0][0]
    started = await open_mj(request, "mj_modal")
    if isinstance(started, Response):
        return started
    ev, fault = started
    marks = read_marks(prompt).add_fault(fault)
    refused = _refused(marks, prompt)
    if refused:
        return json_answer(refused, fault, ev)
    picture = await asyncio.to_thread(modal_picture, task, prompt, mask)
    if picture is None:
        return json_answer(vo(3, NO_TASK), fault, ev)
    state = mj_state(request)
    task.picture, task.prompt, task.prompt_en = picture, task.prompt or prompt, prompt
    task.modal, task.started, task.buttons = "", state.now(), "grid"
    task.fail_reason = marks.fail if marks.fail is not None else task.fail_reason
    task.stuck |= marks.stuck
    task.no_callback |= marks.no_callback
    task.notify_hook = str_field(body, "notifyHook") or task.notify_hook
    if isinstance(body.get("state"), str):
        task.state = body["state"]
    state.book.add(task)  # its weight changed with the mask
    mj_notify.start(state, task)
    return json_answer(vo(1, SUBMITTED_OK, task.id), fault, ev)


def _core() -> list[BaseRoute]:
    return [
        Route("/submit/imagine", imagine, methods=["POST"]),
        Route("/submit/describe", describe, methods=["POST"]),
        Route("/submit/blend", blend, methods=["POST"]),
        Route("/submit/shorten", shorten_prompt, methods=["POST"]),
        Route("/submit/action", action, methods=["POST"]),
        Route("/submit/modal", modal, methods=["POST"]),
        Route("/submit/swap_face", swap_face, methods=["POST"]),
        Route("/insight-face/swap", swap_face, methods=["POST"]),
        Route("/task/list-by-condition", list_by_condition, methods=["POST"]),
        Route("/task/list-by-ids", list_by_condition, methods=["POST"]),
        Route("/task/{task_id}/fetch", fetch, methods=["GET"]),
        Route("/task/{task_id}/image-seed", image_seed, methods=["GET"]),
        # Inside the /mj mount: a route beside it would never be reached.
        Route("/image/{name}", get_image, methods=["GET"]),
    ]


def mj_routes() -> list[BaseRoute]:
    """`/mj/...`, and the same under trueai's speed prefixes (`/mj-fast/mj/...`, ...)."""
    return [Mount(f"{mode}/mj", routes=_core()) for mode in ("", "/mj-fast", "/mj-turbo", "/mj-relax")]
