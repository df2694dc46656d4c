"""The `midjourney-proxy` channel type: MJ tasks run on a midjourney-proxy server (or the
simulator, which speaks it), for the task engine.

The task's `request` (see `api/mj/`) names the upstream path and body; its images are media-store
names, sent as data URLs. A submit's answer code becomes the task's state: 1 and 22 running, 21
waiting for the client's modal, 24 / 4 / 3 a refusal (failed, refunded, not retried), 23 and
transport failures another channel's or a later try's turn. Polls use `list-by-condition` for
a batch; a finished picture is copied into the media store at once. With the channel's
`callback` on, the upstream also calls aitre back (`api/mj/callback.py`) when a task changes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aitre.adapters import mj_proxy_wire as wire
from aitre.adapters.base import Retryable
from aitre.errors import ApiError
from aitre.media.kinds import content_type
from aitre.mj.pricing import mode_of, units
from aitre.mj.tasks import render
from aitre.tasks.protocol import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    WAITING,
    LookupUnsupported,
    Polled,
    Submitted,
    TaskContext,
    TaskRefused,
    TaskView,
)

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.media.store import StoredMedia
    from aitre.state import AppState
    from aitre.tasks.registry import TaskRegistry

CHANNEL_TYPES = ("midjourney-proxy", "simulator")
MAX_BUTTONS = 40
MAX_TEXT = 16_000
_STATUS = {
    "NOT_START": RUNNING,
    "SUBMITTED": RUNNING,
    "IN_PROGRESS": RUNNING,
    "MODAL": WAITING,
    "SUCCESS": SUCCEEDED,
    "FAILURE": FAILED,
    "CANCEL": CANCELLED,
}
# midjourney-proxy codes that end a submit for good (the request, not the channel, is at fault)
_REFUSALS = {3: "not found", 4: "validation error", 9: "failure", 24: "banned prompt"}


def refusal_code(code: int) -> str:
    """How an upstream refusal is kept as the task's error code (the MJ API answers `code`)."""
    return f"mj_{code}"


def callback_token(channel: ChannelInfo, task_id: str) -> str:
    """The secret in the callback URL aitre gives the upstream for one task: only aitre and that
    upstream know it, and it names one task (a leaked URL reveals nothing else)."""
    key = f"aitre-mj-callback:{channel.id}:{channel.secret}".encode()
    return hmac.new(key, task_id.encode(), hashlib.sha256).hexdigest()[:40]


def progress_of(value: Any) -> int:
    text = str(value or "").strip().rstrip("%")
    try:
        return max(0, min(100, int(float(text))))
    except ValueError:
        return 0


def _bounded(value: Any, limit: int = MAX_TEXT) -> str | None:
    return None if value is None else str(value)[:limit]


def normalise(t: dict[str, Any]) -> dict[str, Any]:
    """What aitre keeps of an upstream task object: bounded, without Discord's internals."""
    props: dict[str, Any] = t["properties"] if isinstance(t.get("properties"), dict) else {}
    buttons = [
        {k: b.get(k) for k in ("customId", "emoji", "label", "style", "type")}
        for b in (t.get("buttons") or [])[:MAX_BUTTONS]
        if isinstance(b, dict) and isinstance(b.get("customId"), str) and len(b["customId"]) <= 512
    ]
    kept_props = {
        k: _bounded(props.get(k)) for k in ("finalPrompt", "finalZhPrompt", "messageHash") if props.get(k)
    }
    mode = mode_of(t.get("mode")) or mode_of(props.get("mode"))
    return {
        "status": str(t.get("status") or ""),
        "progress": _bounded(t.get("progress"), 8),
        "prompt": _bounded(t.get("prompt")),
        "promptEn": _bounded(t.get("promptEn")),
        "description": _bounded(t.get("description"), 1000),
        "failReason": _bounded(t.get("failReason"), 1000),
        "imageUrl": _bounded(t.get("imageUrl"), 4096),
        "buttons": buttons,
        "properties": kept_props,
        **({"mode": mode} if mode else {}),
    }


def polled(task: TaskView, t: dict[str, Any], cost: int | None) -> Polled:
    result = normalise(t)
    status = _STATUS.get(result["status"], RUNNING)
    fail = result["failReason"] or ""
    if status == RUNNING and fail:
        status = FAILED  # the Java proxy sets failReason before the status catches up
    return Polled(
        task.id,
        status,
        100 if status == SUCCEEDED else progress_of(result["progress"]),
        result,
        fail or ("Failure" if status == FAILED else ""),
        cost=cost if status == SUCCEEDED else None,
    )


class MjProxyProtocol:
    """The task protocol (`aitre.tasks.protocol.TaskProtocol`) for midjourney-proxy upstreams."""

    kind = "mj"
    poll_batch = 50

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        return channel.serves(task.model)

    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        request = task.request
        modal = request.get("modal")
        if task.upstream_id and isinstance(modal, dict):
            body: dict[str, Any] = {"taskId": task.upstream_id}
            if modal.get("prompt"):
                body["prompt"] = modal["prompt"]
            if modal.get("maskBase64"):
                body["maskBase64"] = await self._data_url(ctx, str(modal["maskBase64"]))
            path = "/mj/submit/modal"
        else:
            body = dict(request.get("body") or {})
            for name, refs in (request.get("images") or {}).items():
                urls = [await self._data_url(ctx, ref) for ref in refs]
                body[name] = urls if name == "base64Array" else urls[0]
            path = str(request["path"])
        # The upstream keeps `state` and shows it on its task: our submit key, for an operator
        # matching a task by hand (midjourney-proxy cannot be searched by it).
        body["state"] = task.submit_key
        if channel.config.get("callback"):
            body["notifyHook"] = self._callback_url(ctx, channel, task)
        answer = await wire.submit(ctx.state, channel, path, body)
        return self._submitted(answer, task)

    def _submitted(self, answer: wire.SubmitAnswer, task: TaskView) -> Submitted:
        code = answer.code
        if code in (1, 21, 22) and answer.result:
            result: dict[str, Any] = {"submitCode": code}
            if code == 22:
                result["properties"] = {"numberOfQueues": answer.properties.get("numberOfQueues")}
            waiting = code == 21 and answer.properties.get("status") != "SUCCESS"
            if waiting:
                result["status"] = "MODAL"
                result["promptEn"] = _bounded(answer.properties.get("finalPrompt"))
            return Submitted(answer.result, WAITING if waiting else RUNNING, 0, result)
        if code == 3 and task.parent_id is None and not task.request.get("modal"):
            # "no available account instance": another channel may have one
            raise Retryable(
                ApiError(503, answer.description or "no account available", type="upstream_error")
            )
        if code in _REFUSALS:
            details = answer.properties.get("bannedWord")
            message = answer.description or _REFUSALS[code]
            raise TaskRefused(f"{message} ({details})" if details else message, refusal_code(code))
        # 23 queue full and anything unknown: not this channel, not now
        raise Retryable(
            ApiError(503, answer.description or f"midjourney-proxy code {code}", type="upstream_error")
        )

    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        # midjourney-proxy cannot find a task by anything but its own id, which a lost answer
        # took with it: whether the submit got there cannot be known.
        raise LookupUnsupported("midjourney-proxy tasks cannot be looked up by submit key")

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        ids = [t.upstream_id for t in tasks if t.upstream_id]
        found = await wire.tasks(ctx.state, channel, ids) if ids else {}
        answers = []
        for task in tasks:
            t = found.get(task.upstream_id or "")
            if t is not None:
                answers.append(polled(task, t, self._cost(ctx, task, t)))
        return answers

    def _cost(self, ctx: TaskContext, task: TaskView, t: dict[str, Any]) -> int | None:
        """The price of the mode the upstream ran the task in (None: the reserved amount)."""
        props: dict[str, Any] = t["properties"] if isinstance(t.get("properties"), dict) else {}
        mode = mode_of(t.get("mode")) or mode_of(props.get("mode")) or task.request.get("mode")
        prices = ctx.state.accountant.prices
        price = prices.price(task.model)
        if price is None or not mode:
            return None
        multiplier: Decimal = prices.multiplier(task.group)
        return units(price, mode, multiplier, ctx.settings.quota_per_usd)

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        url = task.result.get("imageUrl")
        if not url:
            return []  # shorten: text only
        data = await wire.download(ctx.state, channel, str(url))
        return [await ctx.media.save(data)]

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        if task.upstream_id:
            with contextlib.suppress(Retryable):  # best effort: the proxy may have no cancel at all
                await wire.cancel(ctx.state, channel, task.upstream_id)

    async def _data_url(self, ctx: TaskContext, name: str) -> str:
        chunks = await ctx.media.open(name)
        if chunks is None:
            raise TaskRefused("an uploaded image of this task is no longer stored", refusal_code(4))
        data = b"".join([chunk async for chunk in chunks])
        ext = name.rsplit(".", 1)[-1]
        return f"data:{content_type(ext)};base64,{base64.b64encode(data).decode()}"

    def _callback_url(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> str:
        base = str(channel.config.get("callback_url") or ctx.settings.resolved_public_url()).rstrip("/")
        return f"{base}/mj/_callback?task={task.id}&token={callback_token(channel, task.id)}"


class MjProxyAdapter:
    """The relay's view of the channel type: it serves no synchronous endpoint (MJ runs as tasks);
    the channel probe and balance are the proxy's."""

    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        return None

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        try:
            await wire.tasks(state, channel, ["0"])  # an empty list when the key is good
        except Retryable:
            return False
        return True

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return None  # midjourney-proxy reports no balance


def register(registry: TaskRegistry) -> None:
    """The MJ kind in the task registry: its protocol on midjourney-proxy channels and on the
    simulator (which speaks midjourney-proxy under `/mj`), and its task object."""
    protocol = MjProxyProtocol()
    for channel_type in CHANNEL_TYPES:
        registry.add_protocol(channel_type, protocol)
    registry.add_renderer("mj", render)
