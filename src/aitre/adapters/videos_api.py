"""The `videos` channel type: video tasks run on any upstream shaped like OpenAI's `/v1/videos`
(OpenAI itself, resellers, new-api, the simulator), for the task engine.

- submit: `POST /v1/videos` as a multipart form (what OpenAI's SDK sends; the default) or as JSON
  (channel `config: {"create_body": "json"}`), the reference image as a file or a data URL; a
  remix is `POST /v1/videos/{upstream id}/remix` on the channel that made the source video.
- poll: `GET /v1/videos/{id}` for each running task (a few at once), at the upstream's pace
  (`openai-poll-after-ms`) within the engine's bounds; statuses in the vocabularies such
  upstreams use (new-api's list); a failure's message reaches the client only when it is about
  the request (`relay.errors.client_facing`), never naming hosts, keys or accounts.
- result: the video, and its thumbnail and spritesheet when the upstream makes them, streamed into
  the media store at once (upstream links expire).
- lookup after an interrupted create: `/v1/videos` takes no idempotency key aitre could search
  by, so the upstream's newest videos are searched for one made since the submit started with
  the same model, prompt, duration, size (and remix source) that no other task of the channel
  holds. One: the task goes on with it. Several: it cannot be told which (the task fails,
  refunded). None: once a create sent then could no longer be under way (the channel's
  first-byte timeout and a minute after it started), it is certainly not there and is sent
  again; before that, asked again later. An upstream that cannot list: the task fails, refunded.
- cancel: `DELETE /v1/videos/{id}` (best effort).

The simulator channel runs the simulator's own video models through the same protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from aitre.adapters import videos_wire as wire
from aitre.adapters.base import Retryable
from aitre.relay.errors import client_facing, error_from_status
from aitre.relay.job import FormField, UploadedFile
from aitre.relay.multipart import encode
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure
from aitre.simulator import catalog as sim_catalog
from aitre.store.models import now_ms
from aitre.tasks.protocol import (
    FAILED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    LookupUnsupported,
    Polled,
    Submitted,
    TaskContext,
    TaskRefused,
    TaskView,
)
from aitre.tasks.repo import T
from aitre.video.models import KIND
from aitre.video.render import renderer

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.config import Settings
    from aitre.media.store import StoredMedia
    from aitre.state import AppState
    from aitre.tasks.registry import TaskRegistry

CHANNEL_TYPES = ("videos", "simulator")
_QUEUED = frozenset({"queued", "pending", "submitted", "not_start", "preparing"})
_RUNNING = frozenset({"processing", "in_progress", "running", "generating"})
_DONE = frozenset({"completed", "complete", "success", "succeeded", "finished"})
_FAILED = frozenset({"failed", "failure", "fail", "error", "cancelled", "canceled"})
_CLOCK_SKEW_S = 300  # upstream clocks may be this far from ours (lookup's search window)
_LOOKUP_PAGES = 10
_SETTLE_S = 60.0  # after the first-byte timeout: a create sent that long ago is no longer under way
_GENERIC_FAILURE = "The upstream could not make the video."


def _status(value: Any) -> str:
    """The upstream's status in OpenAI's words (`queued`, `in_progress`, `completed`, `failed`)."""
    text = str(value or "").strip().lower()
    if text in _DONE:
        return "completed"
    if text in _FAILED:
        return "failed"
    if text in _RUNNING:
        return "in_progress"
    return "queued"  # what it has not started, and anything unknown: keep asking


def _progress(value: Any) -> int:
    text = str(value if value is not None else "").strip().rstrip("%")
    try:
        return max(0, min(100, int(float(text))))
    except ValueError:
        return 0


def safe_error(error: Any) -> dict[str, str]:
    """An upstream's `error` as the client may see it: its message only when it is about the
    request, its code only when it is a plain identifier."""
    err = error if isinstance(error, dict) else {"message": error} if isinstance(error, str) else {}
    found = client_facing(orjson.dumps({"error": {"message": err.get("message"), "code": err.get("code")}}))
    if found is None:
        return {"code": "video_generation_failed", "message": _GENERIC_FAILURE}
    message, _, code = found
    return {"code": code or "video_generation_failed", "message": message}


def polled(task_id: str, video: dict[str, Any], hint: float | None) -> Polled:
    status = _status(video.get("status"))
    if status == "failed":
        error = safe_error(video.get("error"))
        return Polled(
            task_id,
            FAILED,
            _progress(video.get("progress")),
            {"upstream_status": "failed", "error": error},
            error["message"],
        )
    if status == "completed":
        return Polled(task_id, SUCCEEDED, 100, {"upstream_status": "completed"})
    return Polled(task_id, RUNNING, _progress(video.get("progress")), {"upstream_status": status}, "", hint)


def _refusal(answer: wire.Answer) -> TaskRefused:
    error = error_from_status(answer.status, answer.body, answer.headers)
    return TaskRefused(error.message, error.code or "upstream_rejected")


class VideosProtocol:
    """The task protocol (`aitre.tasks.protocol.TaskProtocol`) for `/v1/videos` upstreams."""

    kind = KIND
    poll_batch = 16

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        if not channel.serves(task.model):
            return False
        # The simulator makes videos of its own video models only (a video by chat names one).
        return channel.type != "simulator" or self.upstream_model(channel, task) in sim_catalog.VIDEO_MODELS

    def upstream_model(self, channel: ChannelInfo, task: TaskView) -> str:
        """The channel's name for the client's model; a model chosen for the upstream already
        (the key's model mapping, the chat side's) goes as it is, unless the channel renames it."""
        asked = str(task.request.get("model") or task.model)
        if asked == task.model:
            return channel.upstream_model(task.model)
        return channel.model_mapping.get(asked, asked)

    # --- submit --------------------------------------------------------------------------------
    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        remix_of = await self._remix_source(ctx, task)
        idem = {"Idempotency-Key": task.submit_key} if task.submit_key else {}
        if remix_of is not None:
            body = orjson.dumps({"prompt": task.request.get("prompt") or ""})
            answer = await wire.call(
                ctx.state,
                channel,
                "POST",
                wire.video_path(remix_of, "/remix"),
                body,
                {"Content-Type": "application/json", **idem},
                makes_work=True,
            )
        else:
            content_type, body = await self._create_body(ctx, channel, task)
            answer = await wire.call(
                ctx.state,
                channel,
                "POST",
                "/videos",
                body,
                {"Content-Type": content_type, **idem},
                makes_work=True,
            )
        return self._submitted(answer, remix=remix_of is not None)

    async def _remix_source(self, ctx: TaskContext, task: TaskView) -> str | None:
        source_id = task.request.get("remix_of")
        if not source_id:
            return None
        source = await ctx.state.tasks.get(str(source_id))
        if source is None or not source.upstream_id or source.channel_id != task.channel_id:
            raise TaskRefused("the video to remix is not on this channel", "remix_source_unavailable")
        return source.upstream_id

    async def _create_body(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> tuple[str, bytes]:
        request = task.request
        fields: dict[str, Any] = {
            **(request.get("extra") or {}),
            "model": self.upstream_model(channel, task),
            "prompt": request.get("prompt") or "",
            "seconds": str(request.get("seconds") or "4"),
            "size": str(request.get("size") or "720x1280"),
        }
        image = await self._reference(ctx, request.get("input_reference"))
        if channel.config.get("create_body") == "json":
            if image is not None:
                data_url = f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"
                fields["input_reference"] = {"image_url": data_url}
            return "application/json", orjson.dumps(fields)
        form: list[FormField] = [(k, _form_text(v)) for k, v in fields.items() if v is not None]
        if image is not None:
            form.append(("input_reference", image))
        return encode(form)

    async def _reference(self, ctx: TaskContext, ref: Any) -> UploadedFile | None:
        if not isinstance(ref, dict) or not ref.get("media"):
            return None
        name = str(ref["media"])
        chunks = await ctx.media.open(name)
        if chunks is None:
            raise TaskRefused("the reference image of this video is no longer stored", "input_reference_gone")
        data = b"".join([chunk async for chunk in chunks])
        content_type = str(ref.get("content_type") or "application/octet-stream")
        return UploadedFile(f"reference.{name.rsplit('.', 1)[-1]}", content_type, data)

    def _submitted(self, answer: wire.Answer, remix: bool) -> Submitted:
        if 200 <= answer.status < 300:
            video = answer.json()
            if not isinstance(video, dict) or not isinstance(video.get("id"), str) or not video["id"]:
                # It answered: the video may exist there, so this is no reason to submit elsewhere.
                raise UpstreamFailure("protocol", "the upstream answered a create without a video id")
            return self.accepted(video, answer.poll_after_s())
        if wire.channel_fault(answer) or (answer.status == 404 and not remix):
            raise wire.retryable(answer)  # 404 on a create: this upstream has no such model or route
        raise _refusal(answer)

    def accepted(self, video: dict[str, Any], hint: float | None) -> Submitted:
        p = polled("", video, hint)
        return Submitted(str(video["id"])[:128], p.status, p.progress, p.result, p.error, p.poll_after_s)

    # --- lookup --------------------------------------------------------------------------------
    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        # When the create was last sent: a send's history entry names its channel (the notes of
        # looking it up again, also `submitting`, do not, and must not move the time on).
        sent_at = max(
            (
                int(h.get("at") or 0)
                for h in task.history
                if h.get("status") == SUBMITTING and "channel_id" in h
            ),
            default=task.started_at or task.created_at,
        )
        remix_of = await self._remix_source(ctx, task) if task.request.get("remix_of") else None
        found = await self._search(ctx, channel, task, sent_at // 1000 - _CLOCK_SKEW_S, remix_of)
        taken = await self._held_elsewhere(ctx, channel, task, [str(v["id"]) for v in found])
        free = [v for v in found if str(v["id"]) not in taken]
        if len(free) == 1:
            return self.accepted(free[0], None)
        if len(free) > 1:
            raise LookupUnsupported("several upstream videos match the interrupted create")
        settle_s = channel_timeouts(ctx.state, channel).first_byte + _SETTLE_S
        if (now_ms() - sent_at) / 1000 < settle_s:
            raise RuntimeError("the interrupted create may still be under way upstream; looking again later")
        return None

    async def _search(
        self, ctx: TaskContext, channel: ChannelInfo, task: TaskView, since_s: int, remix_of: str | None
    ) -> list[dict[str, Any]]:
        """The upstream's videos made since `since_s` that look like this task's."""
        want = {
            "model": self.upstream_model(channel, task),
            "prompt": task.request.get("prompt") or "",
            "seconds": str(task.request.get("seconds") or "4"),
            "size": str(task.request.get("size") or "720x1280"),
        }
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(_LOOKUP_PAGES):
            answer = await wire.list_page(ctx.state, channel, after)
            if answer.status in (404, 405, 501):
                raise LookupUnsupported("the upstream cannot list its videos")
            page = answer.json()
            if answer.status != 200 or not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise RuntimeError(f"listing the upstream's videos failed (HTTP {answer.status})")
            items = [v for v in page["data"] if isinstance(v, dict) and isinstance(v.get("id"), str)]
            for video in items:
                created = video.get("created_at")
                recent = isinstance(created, int) and created >= since_s
                same = all(str(video.get(k) or "") == v for k, v in want.items())
                if recent and same and (video.get("remixed_from_video_id") or None) == remix_of:
                    found.append(video)
            oldest = items[-1].get("created_at") if items else None
            if not page.get("has_more") or not items or (isinstance(oldest, int) and oldest < since_s):
                return found
            after = str(items[-1]["id"])
        raise LookupUnsupported("too many recent upstream videos to search")

    async def _held_elsewhere(
        self, ctx: TaskContext, channel: ChannelInfo, task: TaskView, upstream_ids: list[str]
    ) -> set[str]:
        if not upstream_ids:
            return set()
        async with ctx.state.sessions() as session:
            rows = await session.execute(
                select(T.c.upstream_id).where(
                    T.c.channel_id == channel.id, T.c.upstream_id.in_(upstream_ids), T.c.id != task.id
                )
            )
            return {str(r[0]) for r in rows}

    # --- poll, result, cancel ------------------------------------------------------------------
    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        answers = await asyncio.gather(
            *(self._poll_one(ctx, channel, t) for t in tasks if t.upstream_id), return_exceptions=True
        )
        found = [a for a in answers if isinstance(a, Polled)]
        failures = [a for a in answers if isinstance(a, BaseException)]
        if failures and not found:
            raise failures[0]  # the channel is unwell: the engine backs off
        return found

    async def _poll_one(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Polled | None:
        assert task.upstream_id is not None
        answer = await wire.get_video(ctx.state, channel, task.upstream_id)
        if answer.status == 404:
            message = "The upstream no longer has this video."
            error = {"code": "upstream_video_gone", "message": message}
            return Polled(
                task.id, FAILED, task.progress, {"upstream_status": "failed", "error": error}, message
            )
        if answer.status != 200:
            raise wire.retryable(answer)  # left out of this round: polled again later
        video = answer.json()
        if not isinstance(video, dict):
            raise RuntimeError("the upstream answered a retrieve with something that is not a video")
        return polled(task.id, video, answer.poll_after_s())

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        assert task.upstream_id is not None
        folder = ctx.settings.resolved_media_dir() / ".incoming"
        limit = ctx.settings.video_max_download_bytes
        kept: list[StoredMedia] = []
        try:
            for variant in ("video", "thumbnail", "spritesheet"):
                got = await wire.download(ctx.state, channel, task.upstream_id, variant, folder, limit)
                if got is None:
                    break  # not offered; a spritesheet is kept only after a thumbnail (`video.render`)
                kept.append(await ctx.media.save_file(got[0], got[1]))
        except BaseException:
            for stored in kept:  # tried again whole: what this round kept would be nobody's
                await ctx.media.delete(stored.name)
            raise
        return kept

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        if task.upstream_id:
            with contextlib.suppress(Retryable):  # best effort: not every upstream deletes a running job
                await wire.delete_video(ctx.state, channel, task.upstream_id)


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class VideosAdapter:
    """The relay's view of the channel type: it forwards nothing and makes no images (videos run
    as tasks); its probe lists one video."""

    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        return None

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        try:
            answer = await wire.list_page(state, channel, None, 1)
        except Retryable:
            return False
        return answer.status == 200

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return None


def register(registry: TaskRegistry, settings: Settings) -> None:
    """The video kind in the task registry: this protocol on `videos` channels and on the
    simulator (which speaks `/v1/videos`), and OpenAI's video object as its rendering."""
    protocol = VideosProtocol()
    for channel_type in CHANNEL_TYPES:
        registry.add_protocol(channel_type, protocol)
    registry.add_renderer(KIND, renderer(settings.media_retention_days))


__all__ = ["VideosAdapter", "VideosProtocol", "register"]
