"""The task kind the task benchmark drives (`bench/tasks.py`), loaded into the gateway as a plugin
(`AITRE_TASK_PLUGINS=bench.taskkit:register`): a minimal midjourney-proxy protocol against the
simulator's `/mj` routes (imagine to submit, `list-by-condition` to poll a batch), and two
routes: `POST /bench/submit` (one task) and `GET /bench/stats` (what the protocol did so far).

It counts its own calls so the benchmark can divide the gateway's CPU time by the polls made.
(When the MJ kind lands, the benchmark can drive `/mj/submit/imagine` instead.)
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.adapters.base import Retryable
from aitre.api.common import app_state, authenticate, read_body
from aitre.channels.model import ChannelInfo
from aitre.errors import upstream_error
from aitre.jsonresp import json_response
from aitre.media.store import StoredMedia
from aitre.tasks.protocol import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    LookupUnsupported,
    Polled,
    Submitted,
    TaskContext,
    TaskRefused,
    TaskSpec,
    TaskView,
)
from aitre.tasks.registry import TaskRegistry

MODEL = "mj-bench"
_STATUS = {"SUCCESS": SUCCEEDED, "FAILURE": FAILED}


class BenchMj:
    kind = "bench"
    poll_batch = 100

    def __init__(self) -> None:
        self.counts = {"submits": 0, "poll_calls": 0, "polled": 0}

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        return channel.serves(task.model)

    def _headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"mj-api-secret": channel.secret}

    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        self.counts["submits"] += 1
        body = {"prompt": task.request["prompt"], "state": task.submit_key}
        url = channel.root_url() + "/mj/submit/imagine"
        status, data = await ctx.call(channel, "POST", url, body, self._headers(channel))
        if status != 200 or not isinstance(data, dict):
            raise Retryable(upstream_error(502, f"imagine answered HTTP {status}"))
        if data.get("code") not in (1, 22):
            raise TaskRefused(str(data.get("description")), f"mj_{data.get('code')}")
        return Submitted(str(data["result"]), RUNNING, 0, poll_after_s=None)

    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        raise LookupUnsupported()

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        self.counts["poll_calls"] += 1
        self.counts["polled"] += len(tasks)
        ours = {t.upstream_id: t.id for t in tasks}
        url = channel.root_url() + "/mj/task/list-by-condition"
        status, data = await ctx.call(channel, "POST", url, {"ids": list(ours)}, self._headers(channel))
        if status != 200 or not isinstance(data, list):
            raise RuntimeError(f"list-by-condition answered HTTP {status}")
        out = []
        for item in data:
            progress = int(str(item.get("progress") or "0").rstrip("%") or 0)
            status_ = _STATUS.get(str(item.get("status")), RUNNING)
            out.append(Polled(ours[item["id"]], status_, progress, None, str(item.get("failReason") or "")))
        return out

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        return []

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        return None


def register(registry: TaskRegistry) -> None:
    protocol = BenchMj()
    numbers = itertools.count(10**15)

    async def submit(request: Request) -> Response:
        state = app_state(request)
        caller = await authenticate(request, state)
        body: dict[str, Any] = orjson.loads(await read_body(request, 1 << 16) or b"{}")
        spec = TaskSpec(
            id=f"{next(numbers)}{state.instance.journal[:6]}",
            kind="bench",
            action="imagine",
            model=MODEL,
            user_id=caller.user_id,
            token_id=caller.token_id,
            group=caller.group,
            cost=1,
            request={"prompt": str(body.get("prompt", "a bench task --sim-stuck"))},
            deadline_s=float(body.get("timeout", 86400)),
        )
        task = await state.tasks.create(spec)
        return json_response({"id": task.id})

    async def stats(request: Request) -> Response:
        state = app_state(request)
        await authenticate(request, state)
        return json_response({**protocol.counts, "claim_rounds": state.tasks.workers.rounds})

    registry.add_protocol("openai", protocol)
    registry.add_route("POST", "/bench/submit", submit)
    registry.add_route("GET", "/bench/stats", stats)
