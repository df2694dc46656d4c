"""The chat front of task-backed models: a `/v1/chat/completions` request for `sora_video2` (or an
alias) or `sora_remover` becomes a task, and the answer follows it.

- `stream: true`: the stream starts at once: a first chunk (the assistant's role and a line with
  the task's id), a line each time its progress rises, an SSE comment (`: ping`) every
  `AITRE_CHAT_TASK_PING_SECONDS` while it is quiet, then the link to the video in aitre's media
  store, `finish_reason: "stop"` with the usage, and `[DONE]`. A failure is a line saying why
  and an `{"error": ...}` event before `[DONE]`.
- otherwise: one `chat.completion` once the task has ended, or, after
  `AITRE_CHAT_TASK_WAIT_SECONDS`, one naming the task and where to follow it; a failed task is an
  error answer.

The client leaving (or stopping to read) ends only the answer: the task goes on, is charged or
refunded when it ends, and stays in the user's task list (`GET /api/user/tasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response

from aitre.accounts.policy import check_key
from aitre.chattask import answers, inputs
from aitre.chattask.create import create_removal, create_video, precheck, removal_cost, video_cost
from aitre.chattask.models import is_remover, video_model
from aitre.errors import ApiError
from aitre.facades.chat_shapes import chat_completion, chat_stream_chunks
from aitre.relay.cancel import unless_disconnected
from aitre.relay.errors import detail
from aitre.relay.live import Emit, LiveStream
from aitre.relay.outcome import finish

if TYPE_CHECKING:
    from aitre.relay.job import RelayJob
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskView

PING = b": ping\n\n"
_WATCH_S = 1.0  # how often a task changed by another process is looked at
_COUNT_MODEL = "gpt-4o"  # the tokenizer the answer's usage is counted with


async def chat_task(state: AppState, job: RelayJob) -> Response | LiveStream:
    """Answer a chat request for a task-backed model (see `chattask.models.is_chat_task`)."""
    try:
        task, prompt = await _start(state, job)
    except ApiError as error:
        finish(state, job, None, error.status, detail(error))  # logged, costs nothing
        raise
    if job.stream:
        return _stream(state, job, task, prompt)
    return await _wait(state, job, task, prompt)


async def _start(state: AppState, job: RelayJob) -> tuple[TaskView, str]:
    caller = job.caller
    check_key(caller, job.client_ip, job.model)
    if caller.rpm > 0 or caller.tpm > 0:
        wait = await state.accountant.limiter.admit(
            caller.token_id, caller.rpm, caller.tpm, 0, job.request_id
        )
        if wait is not None:
            raise ApiError(
                429,
                f"Rate limit of this API key reached; retry in {wait:g}s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(int(wait))},
            )
    message = inputs.last_user_message(job.body["messages"])
    video = video_model(state.settings, job.model)
    if video is None and is_remover(state.settings, job.model):
        text = inputs.prompt_of(state, message, required=False)
        url = inputs.video_link(state, message)
        cost = removal_cost(state, caller, job.model)
        await precheck(state, caller, cost)
        return await create_removal(state, caller, job.model, url, text, cost), text
    assert video is not None  # `is_chat_task` sent it here
    prompt = inputs.prompt_of(state, message)
    inputs.check_images(state, message)
    cost = video_cost(state, caller, video)
    await precheck(state, caller, cost)
    reference = await inputs.reference_image(state, message)
    return await create_video(state, caller, video, prompt, reference, cost), prompt


async def follow(state: AppState, task_id: str, ping_s: float) -> AsyncIterator[TaskView | None]:
    """The task now and at each change until it ends; None each time `ping_s` passes quietly."""
    watcher = state.tasks.watch(task_id, _WATCH_S)
    pending: asyncio.Future[TaskView] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(watcher))
            done, _ = await asyncio.wait({pending}, timeout=ping_s)
            if not done:
                yield None
                continue
            try:
                view = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield view
            if view.done:
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await watcher.aclose()  # type: ignore[attr-defined]


def _completion_id(job: RelayJob) -> str:
    return "chatcmpl-" + job.request_id.removeprefix("req_")


def _headers(job: RelayJob, task: TaskView) -> dict[str, str]:
    return {"x-request-id": job.request_id, "x-aitre-task-id": task.id}


async def _usage(state: AppState, prompt: str, written: str) -> dict[str, int]:
    def count() -> tuple[int, int]:
        return state.tokenizer.count(prompt, _COUNT_MODEL), state.tokenizer.count(written, _COUNT_MODEL)

    await state.tokenizer.ready(_COUNT_MODEL)
    long = len(prompt) + len(written) > state.settings.count_inline_bytes
    p, c = await asyncio.to_thread(count) if long else count()
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


async def _wait(state: AppState, job: RelayJob, task: TaskView, prompt: str) -> Response:
    async def until_done() -> TaskView:
        last = task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(state.settings.chat_task_wait_seconds):
                async for view in follow(state, task.id, 3600.0):
                    if view is not None:
                        last = view
        return last

    last = await unless_disconnected(job.receive, until_done())
    if last.done:
        url = answers.link(last, state.media)
        if url is None:
            raise answers.error(last)
        content = answers.done(last, url)
    else:
        content = answers.still_running(last)
    usage = await _usage(state, prompt, content)
    body = chat_completion(_completion_id(job), int(time.time()), job.model, content, usage)
    return Response(orjson.dumps(body), media_type="application/json", headers=_headers(job, last))


def _stream(state: AppState, job: RelayJob, task: TaskView, prompt: str) -> LiveStream:
    ping_s = state.settings.chat_task_ping_seconds

    async def work(emit: Emit) -> None:
        chunks = chat_stream_chunks(_completion_id(job), int(time.time()), job.model)
        written: list[str] = []

        async def say(text: str) -> None:
            written.append(text)
            await emit(chunks.content(text))

        first = answers.opening(task)
        written.append(first)
        await emit(chunks.role(first))
        shown = 0
        last = task
        async for view in follow(state, task.id, ping_s):
            if view is None:
                await emit(PING)
                continue
            last = view
            if not view.done and view.progress > shown:
                shown = view.progress
                await say(answers.progress(shown))
        url = answers.link(last, state.media) if last.done else None
        if url is None:
            await say(answers.failed(last) if last.done else answers.lost(last))
            error = answers.error(last) if last.done else answers.lost_error(last)
            await emit(error.sse_event() + b"data: [DONE]\n\n")
            return
        await say(answers.done(last, url))
        usage = await _usage(state, prompt, "".join(written))
        if job.client_wants_usage:
            await emit(chunks.finish("stop") + chunks.usage(usage))
        else:
            await emit(chunks.finish("stop", usage))
        await emit(b"data: [DONE]\n\n")

    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        *((k.encode(), v.encode()) for k, v in _headers(job, task).items()),
    ]
    return LiveStream(work, headers, keepalive_seconds=max(10.0, ping_s * 2))
