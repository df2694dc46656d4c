"""A task kind ("stub") and its protocol, loaded into a test gateway as a plugin
(`AITRE_TASK_PLUGINS=tests.tasks.stubkit:register`), the way protocols outside aitre are.

The protocol speaks to `stub_upstream` through the channel's base URL (an `openai` channel that
lists the model `stub-model`). The kind's routes: `POST /stub/submit` (creates a task; the body
says how the upstream job behaves and what it costs) and `GET /stub/task?id=` (the task as the
kind renders it: also the notifyHook body).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aitre.adapters.base import Retryable
from aitre.api.common import app_state, authenticate, read_body
from aitre.channels.model import ChannelInfo
from aitre.errors import ApiError, upstream_error
from aitre.jsonresp import json_response
from aitre.media.store import MediaStore, StoredMedia
from aitre.relay.upstream import UpstreamRequest
from aitre.relay.upstream import read_body as read_upstream
from aitre.tasks.protocol import (
    RUNNING,
    LookupUnsupported,
    Polled,
    Submitted,
    TaskContext,
    TaskRefused,
    TaskSpec,
    TaskView,
)
from aitre.tasks.registry import TaskRegistry, plain_renderer

MODEL = "stub-model"


class StubProtocol:
    kind = "stub"
    poll_batch = 20

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        return channel.serves(task.model)

    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        body = {"key": task.submit_key, **task.request}
        status, data = await ctx.call(channel, "POST", channel.root_url() + "/submit", body)
        if status == 400:
            raise TaskRefused(str(data["error"]), "stub_refused")
        if status != 200:
            raise Retryable(upstream_error(status, f"the stub upstream answered {status}"))
        return Submitted(str(data["id"]), RUNNING, 0)

    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        if channel.config.get("no_lookup"):
            raise LookupUnsupported()
        status, data = await ctx.call(channel, "GET", f"{channel.root_url()}/lookup?key={task.submit_key}")
        if status == 404:
            return None
        return Submitted(str(data["id"]), RUNNING, int(data.get("progress", 0)))

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        by_upstream = {t.upstream_id: t.id for t in tasks}
        status, data = await ctx.call(
            channel, "POST", channel.root_url() + "/poll", {"ids": list(by_upstream)}
        )
        if status != 200:
            raise RuntimeError(f"poll answered {status}")
        out = []
        for job in data["tasks"]:
            result = {"image": job["image"]} if "image" in job else None
            out.append(
                Polled(by_upstream[job["id"]], job["status"], job["progress"], result, job.get("error", ""))
            )
        return out

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        url = channel.root_url() + task.result["image"]
        resp = await ctx.upstream.send(UpstreamRequest("GET", url), ctx.timeouts(channel))
        try:
            data = await read_upstream(resp, ctx.timeouts(channel), 1 << 20)
        finally:
            resp.release()
        return [await ctx.media.save(data)]

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        await ctx.call(channel, "POST", channel.root_url() + "/cancel", {"id": task.upstream_id})


def render(task: TaskView, media: MediaStore) -> dict[str, Any]:
    out = plain_renderer(task, media)
    out["imageUrl"] = media.url(task.media[0]["name"]) if task.media else None
    return out


async def submit(request: Request) -> Response:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = orjson.loads(await read_body(request, 1 << 20))
    job = {k: body[k] for k in ("mode", "steps", "step_s", "delay") if k in body}
    spec = TaskSpec(
        id=str(body.get("id") or secrets.randbelow(10**16) + 10**15),
        kind="stub",
        action="imagine",
        model=str(body.get("model", MODEL)),
        user_id=caller.user_id,
        token_id=caller.token_id,
        group=caller.group,
        cost=int(body.get("cost", 1000)),
        request=job,
        notify_hook=body.get("notifyHook"),
        client_state=body.get("state"),
        deadline_s=body.get("timeout"),
    )
    task = await state.tasks.create(spec)
    return json_response({"id": task.id})


async def fetch(request: Request) -> Response:
    state = app_state(request)
    caller = await authenticate(request, state)
    task = await state.tasks.get(request.query_params.get("id", ""), caller.user_id)
    if task is None:
        raise ApiError(404, "no such task", code="not_found")
    return json_response(state.tasks.registry.render(task, state.media))


async def cancel(request: Request) -> Response:
    state = app_state(request)
    caller = await authenticate(request, state)
    task = await state.tasks.cancel(request.query_params.get("id", ""), caller.user_id)
    return json_response(state.tasks.registry.render(task, state.media))


async def callback(request: Request) -> Response:
    """What an upstream's callback route does: the task is polled now."""
    state = app_state(request)
    return json_response({"polled": await state.tasks.poll_now(request.query_params.get("id", ""))})


async def watch(request: Request) -> Response:
    """The task as it changes, one JSON line each (how step 8's chat streams show progress)."""
    state = app_state(request)
    caller = await authenticate(request, state)
    task_id = request.query_params.get("id", "")
    if await state.tasks.get(task_id, caller.user_id) is None:
        raise ApiError(404, "no such task", code="not_found")

    async def lines() -> AsyncIterator[bytes]:
        async for task in state.tasks.watch(task_id, interval_s=5.0):
            yield orjson.dumps({"status": task.status, "progress": task.progress}) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def register(registry: TaskRegistry) -> None:
    registry.add_protocol("openai", StubProtocol())
    registry.add_renderer("stub", render)
    registry.add_route("POST", "/stub/submit", submit)
    registry.add_route("GET", "/stub/task", fetch)
    registry.add_route("POST", "/stub/cancel", cancel)
    registry.add_route("POST", "/stub/callback", callback)
    registry.add_route("GET", "/stub/watch", watch)
