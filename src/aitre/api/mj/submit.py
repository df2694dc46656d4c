"""`POST /mj/submit/*` and `/mj/insight-face/swap`: check, price, create the task, and answer as
midjourney-proxy does once the upstream has taken it (or refused it).

midjourney-proxy answers a submit after Discord took it, so clients expect a banned prompt (24)
or a modal (21) in the submit's answer. aitre's engine submits in the background; the route
waits for that first submit (at most `AITRE_MJ_SUBMIT_WAIT_SECONDS`) and answers what it got;
a task still in aitre's queue then is answered 22 (queued), with its id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.accounts.auth import Caller
from aitre.accounts.policy import model_allowed
from aitre.api.common import read_body
from aitre.api.mj.common import KIND, begin, new_task_id
from aitre.api.mj.hooks import check_hook, guarded_fetch
from aitre.errors import ApiError
from aitre.mj import answers
from aitre.mj.answers import Refusal, answer, refused
from aitre.mj.custom_ids import find_upstream, kind_of
from aitre.mj.inputs import MAX_CUSTOM_ID, SUBMITS, Limits, Submission, common, modal_input, task_id, text
from aitre.mj.pricing import asked_mode, units
from aitre.state import AppState
from aitre.tasks.protocol import (
    FAILED,
    QUEUED,
    SUBMITTING,
    SUCCEEDED,
    WAITING,
    TaskFilter,
    TaskService,
    TaskSpec,
    TaskView,
)

_PARSE_INLINE = 256 * 1024


def limits(state: AppState) -> Limits:
    s = state.settings
    return Limits(prompt_chars=s.mj_max_prompt_chars, image_bytes=s.mj_max_image_bytes)


async def _body(request: Request, state: AppState) -> dict[str, Any]:
    """The JSON object sent; not JSON, or not an object: code 4 (too large: HTTP 413). Bodies
    with images run to megabytes: those are parsed off the event loop."""
    raw = await read_body(request, state.settings.max_body_bytes)
    try:
        data = orjson.loads(raw) if len(raw) < _PARSE_INLINE else await asyncio.to_thread(orjson.loads, raw)
    except orjson.JSONDecodeError:
        raise Refusal(answers.VALIDATION, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Refusal(answers.VALIDATION, "The body must be a JSON object.")
    return data


async def _submit(request: Request, kind: str) -> Response:
    state, caller, tasks = await begin(request)
    try:
        body = await _body(request, state)
        sub = await SUBMITS[kind](body, limits(state), guarded_fetch(state))
        return await _run(state, tasks, caller, sub)
    except Refusal as refusal:
        return refused(refusal)


async def imagine(request: Request) -> Response:
    return await _submit(request, "imagine")


async def blend(request: Request) -> Response:
    return await _submit(request, "blend")


async def describe(request: Request) -> Response:
    return await _submit(request, "describe")


async def shorten(request: Request) -> Response:
    return await _submit(request, "shorten")


async def swap_face(request: Request) -> Response:
    return await _submit(request, "swap_face")


async def action(request: Request) -> Response:
    state, caller, tasks = await begin(request)
    try:
        body = await _body(request, state)
        parent_id = task_id(body)
        wanted = text(body, "customId", MAX_CUSTOM_ID, required=True) or ""
        parent = await tasks.get(parent_id, caller.user_id)
        if parent is None or parent.kind != KIND:
            raise Refusal(answers.NOT_FOUND, "The parent task does not exist.")
        if parent.status != SUCCEEDED:
            raise Refusal(
                answers.VALIDATION, "The parent task has not succeeded; its buttons cannot be used yet."
            )
        props = parent.result.get("properties") or {}
        upstream = find_upstream(
            parent.result.get("buttons") or [], wanted, parent.id, props.get("messageHash")
        )
        kind = None if upstream is None else kind_of(upstream)
        if upstream is None or kind is None:
            raise Refusal(answers.VALIDATION, "customId is not one of this task's buttons.")
        if kind.no_task:
            return answer(answers.SUBMITTED, "Success", parent.id)  # ❤️: nothing runs
        prompt = str(parent.request.get("prompt") or "")
        sub = Submission(
            kind.action,
            kind.model,
            "/mj/submit/action",
            {"taskId": parent.upstream_id, "customId": upstream},
            prompt=prompt,
        )
        common(sub, body)
        return await _run(state, tasks, caller, sub, parent=parent, custom_id=wanted)
    except Refusal as refusal:
        return refused(refusal)


async def modal(request: Request) -> Response:
    state, caller, tasks = await begin(request)
    try:
        body = await _body(request, state)
        waiting = await tasks.get(task_id(body), caller.user_id)
        if waiting is None or waiting.kind != KIND:
            raise Refusal(answers.NOT_FOUND, "The task does not exist.")
        if waiting.status != WAITING:
            raise Refusal(answers.VALIDATION, "The task is not waiting for a modal.")
        prompt, mask = await modal_input(body, limits(state))
        if waiting.action == "inpaint" and mask is None:
            raise Refusal(answers.VALIDATION, "maskBase64 must not be empty for Vary (Region).")
        patch: dict[str, Any] = {"modal": {"prompt": prompt or waiting.result.get("promptEn") or ""}}
        if mask is not None:
            patch["modal"]["maskBase64"] = (await state.media.save(mask)).name
        try:
            await tasks.resume(waiting.id, patch, caller.user_id)
        except ApiError as exc:
            if exc.status in (404, 409):
                raise Refusal(answers.VALIDATION, "The task is not waiting for a modal.") from None
            raise
        return await _answer(state, tasks, waiting.id)
    except Refusal as refusal:
        return refused(refusal)


async def _run(
    state: AppState,
    tasks: TaskService,
    caller: Caller,
    sub: Submission,
    parent: TaskView | None = None,
    custom_id: str | None = None,
) -> Response:
    """Price the submission, store its images, create the task, and answer its first submit."""
    if not model_allowed(caller, sub.model):
        raise Refusal(answers.VALIDATION, f"This API key may not use {sub.model}.")
    price = state.accountant.prices.price(sub.model)
    if price is None:
        raise Refusal(answers.VALIDATION, f"{sub.model} has no price here; ask the operator to set one.")
    if sub.notify_hook:
        await check_hook(state, sub.notify_hook)
    await _check_open(state, tasks, caller)
    mode = asked_mode(sub.prompt)
    cost = units(price, mode, state.accountant.prices.multiplier(caller.group), state.settings.quota_per_usd)
    request_doc: dict[str, Any] = {
        "path": sub.path,
        "body": sub.body,
        "prompt": sub.prompt,
        "botType": sub.body.get("botType") or (parent.request.get("botType") if parent else None),
        "customId": custom_id,
        **({"mode": mode} if mode else {}),
    }
    if sub.images:
        request_doc["images"] = {
            name: [(await state.media.save(pic)).name for pic in pics] for name, pics in sub.images.items()
        }
    spec = TaskSpec(
        id=new_task_id(),
        kind=KIND,
        action=sub.action.lower(),
        model=sub.model,
        user_id=caller.user_id,
        token_id=caller.token_id,
        group=caller.group,
        cost=cost,
        request=request_doc,
        parent_id=parent.id if parent else None,
        channel_id=parent.channel_id if parent else None,
        notify_hook=sub.notify_hook,
        client_state=sub.state,
    )
    try:
        created = await tasks.create(spec)
    except ApiError as exc:
        for names in (request_doc.get("images") or {}).values():
            for name in names:
                await state.media.delete(name)  # the task was not made: its uploads go too
        if exc.status == 402:
            # new-api's answer for a balance too low for an MJ task: code 4 "quota_not_enough"
            raise Refusal(answers.VALIDATION, "quota_not_enough") from None
        if exc.status == 503 and exc.code == "no_channel":
            raise Refusal(answers.NOT_FOUND, "No channel serves this MJ action.") from None
        raise
    return await _answer(state, tasks, created.id)


async def _check_open(state: AppState, tasks: TaskService, caller: Caller) -> None:
    """One user's open tasks are bounded (midjourney-proxy's 23: queue full)."""
    most = state.settings.mj_max_open_tasks
    if most <= 0:
        return
    _, open_now = await tasks.list_tasks(TaskFilter(user_id=caller.user_id, kind=KIND, status="open"), 1, 1)
    if open_now >= most:
        raise Refusal(answers.QUEUE_FULL, f"Too many open tasks ({open_now}); wait for some to finish.")


async def _answer(state: AppState, tasks: TaskService, task_id: str) -> Response:
    """Wait for the first submit of the task, then answer as midjourney-proxy would."""
    task = await first_submit(tasks, task_id, state.settings.mj_submit_wait_seconds)
    if task is None or task.status in (QUEUED, SUBMITTING):
        return answer(answers.IN_QUEUE, "In queue", task_id, {"numberOfQueues": 1})
    if task.status == WAITING:
        return answer(answers.MODAL, "Waiting for window confirm", task.id, {
            "finalPrompt": task.result.get("promptEn") or task.request.get("prompt") or "",
            "remix": True,
        })  # fmt: skip
    if task.status == FAILED and task.error_code.startswith("mj_") and task.error_code[3:].isdigit():
        return answer(int(task.error_code[3:]), task.error or "Refused")  # refunded by the engine
    if task.status == FAILED and not task.upstream_id:
        return answer(answers.FAILURE, task.error or "Submit failed")
    queued = (
        (task.result.get("properties") or {}).get("numberOfQueues")
        if task.result.get("submitCode") == 22
        else None
    )
    if queued:
        return answer(answers.IN_QUEUE, f"In queue, {queued} ahead", task.id, {"numberOfQueues": queued})
    return answer(answers.SUBMITTED, "Submit success", task.id)


async def first_submit(tasks: TaskService, task_id: str, seconds: float) -> TaskView | None:
    """The task once its first submit is over (or as it is when `seconds` have passed)."""
    last: TaskView | None = None
    watcher = tasks.watch(task_id, interval_s=0.2)
    try:
        async with asyncio.timeout(seconds):
            async for view in watcher:
                last = view
                if view.status not in (QUEUED, SUBMITTING):
                    break
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await watcher.aclose()  # type: ignore[attr-defined]
    return last
