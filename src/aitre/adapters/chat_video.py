"""The `chat-video` channel type: an upstream that makes Sora videos (`sora_video2`...) or removes
their watermark (`sora_remover`) when asked by chat, answering with a stream of progress lines
and a link to the video at the end. It runs the task kinds `video` and `sora_remover`.

Submit sends the chat request (`stream: true`; a reference image inlined as a data URI, since
the upstream cannot reach what aitre fetched) and, once the upstream has said 200, leaves its
answer to a background reader in this process (`chattask.runs`): progress as it comes, then the
video downloaded into aitre's media store (its link expires upstream; ours does not). The
engine's polls read what the reader found.

A chat answer has no id to look the job up by afterwards. So: a submit cut off before its answer
began cannot be known to have arrived (`LookupUnsupported`: the task fails `submit_uncertain`,
refunded, never sent twice); an answer cut off by this process's end (a crash, a restart) is lost
for good: the task fails (`upstream_stream_lost`), refunded. Either way no second upstream job.
"""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.base import Retryable
from aitre.adapters.chat_video_stream import ChatVideoStream
from aitre.adapters.openai_compat import OpenAICompatAdapter
from aitre.chattask.models import REMOVER_KIND, VIDEO_KIND
from aitre.chattask.runs import ERROR_CODE, RUNNER, Run, RunFailed, Runs
from aitre.errors import ApiError, upstream_error
from aitre.media.fetch import FetchRefused
from aitre.media.kinds import sniff
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.sse import EventTooLarge
from aitre.relay.upstream import Response, UpstreamFailure, UpstreamRequest
from aitre.tasks.protocol import FAILED, LookupUnsupported, Polled, Submitted, TaskContext, TaskRefused

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.media.store import StoredMedia
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskView
    from aitre.tasks.registry import TaskRegistry

CHANNEL_TYPE = "chat-video"
LOST = "upstream_stream_lost"
REFUSED = "upstream_refused"
_ERROR_BODY = 64 * 1024
_ANSWER_LIMIT = 4 * 1024 * 1024  # a whole JSON answer (an upstream that does not stream)
_DOWNLOAD_TRIES = 3
_VIDEO_EXTS = ("mp4", "webm")


def _upstream_message(raw: bytes, status: int) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    said = str(message) if message else raw[:300].decode(errors="replace")
    return f"the upstream refused the request (HTTP {status}): {said[:1000]}"


class ChatVideoProtocol:
    """`aitre.tasks.protocol.TaskProtocol` for `chat-video` channels, one per kind (they share the
    readers)."""

    poll_batch = 50

    def __init__(self, kind: str, runs: Runs) -> None:
        self.kind = kind
        self.runs = runs

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        # A video asked for through `/v1/videos` (its size, length, remix) cannot be ordered by
        # chat, where the model's name is the whole order: only chat's own videos come here.
        if self.kind == VIDEO_KIND and task.request.get("via") != "chat":
            return False
        return channel.serves(task.model)

    # --- submit ----------------------------------------------------------------------------------
    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        body = await self._body(ctx, channel, task)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if channel.secret:
            headers["Authorization"] = f"Bearer {channel.secret}"
        request = UpstreamRequest(
            "POST", channel.api_base() + "/chat/completions", headers, orjson.dumps(body)
        )
        try:
            resp = await ctx.upstream.send(request, ctx.timeouts(channel))
        except UpstreamFailure as failure:
            if failure.kind == "connect":  # nothing was sent
                raise Retryable(upstream_error(502, failure.message, "upstream_unreachable")) from failure
            raise  # it may have arrived: the engine asks `lookup`, which cannot know
        if resp.status != 200:
            await self._refused(ctx, channel, resp)
        state = ctx.state
        self.runs.start(state, task.id, lambda run: self._read(state, channel, resp, run))
        return Submitted(f"chat:{task.submit_key}", result={RUNNER: self.runs.me(state)})

    async def _refused(self, ctx: TaskContext, channel: ChannelInfo, resp: Response) -> None:
        """An error answer: the upstream made no video. A bad request is the request's fault; the
        rest (a bad key, a model it lacks, overload) may go better on another channel."""
        try:
            raw = await resp.read(_ERROR_BODY, ctx.timeouts(channel).first_byte)
        except UpstreamFailure:
            raw = b""
        finally:
            resp.close()
        message = _upstream_message(raw, resp.status)
        if resp.status in (400, 413, 422):
            raise TaskRefused(message, REFUSED)
        raise Retryable(ApiError(502 if resp.status < 500 else resp.status, message, type="upstream_error"))

    async def _body(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> dict[str, Any]:
        request = task.request
        content: str | list[dict[str, Any]]
        if task.kind == REMOVER_KIND:
            url = str(request.get("url") or "")
            text = str(request.get("prompt") or "")
            content = text if url in text else f"{text}\n{url}".strip()
        else:
            content = str(request.get("prompt") or "")
            reference = request.get("input_reference")
            if isinstance(reference, dict) and reference.get("media"):
                uri = await self._data_uri(ctx, str(reference["media"]), str(reference.get("content_type")))
                content = [
                    {"type": "text", "text": content},
                    {"type": "image_url", "image_url": {"url": uri}},
                ]
        return {
            "model": channel.upstream_model(task.model),
            "stream": True,
            "messages": [{"role": "user", "content": content}],
        }

    async def _data_uri(self, ctx: TaskContext, name: str, content_type: str) -> str:
        chunks = await ctx.media.open(name)
        if chunks is None:
            raise TaskRefused("the task's reference image is no longer stored", "reference_gone")
        data = b"".join([chunk async for chunk in chunks])
        return f"data:{content_type};base64,{base64.b64encode(data).decode()}"

    # --- the reader ------------------------------------------------------------------------------
    async def _read(self, state: AppState, channel: ChannelInfo, resp: Response, run: Run) -> None:
        stall = float(channel.config.get("stall_seconds") or state.settings.chat_video_stall_seconds)
        answer = ChatVideoStream()
        state.health.begin(channel.id)  # a long answer holds one of the channel's slots
        try:
            if resp.content_type == "application/json":
                answer.feed_answer(await resp.read(_ANSWER_LIMIT, stall))
            else:
                await self._follow(state, resp, run, answer, stall)
            answer.end()
        except UpstreamFailure as failure:
            if not (answer.finished and answer.url):  # a stall after the last chunk is no loss
                state.health.failure(channel.id, 0.0, failure.message)
                raise RunFailed(f"the upstream's answer broke off: {failure.message}", LOST) from None
            answer.end()
        except EventTooLarge as exc:
            raise RunFailed(f"the upstream's answer is not a chat stream: {exc}", LOST) from None
        finally:
            state.health.end(channel.id)
            resp.close()
        state.health.success(channel.id, 0.0)  # it answered, whatever became of the job
        url = answer.url
        if answer.error is not None or url is None:
            raise RunFailed(answer.failure(), answer.error_code or "upstream_failed")
        stored = await self._keep(state, channel, url)
        self.runs.succeed(run, media=stored.name, url=url[:2000])

    async def _follow(
        self, state: AppState, resp: Response, run: Run, answer: ChatVideoStream, stall: float
    ) -> None:
        while not answer.done:
            data = await resp.readany(stall)
            if not data:
                return
            answer.feed(data)
            if answer.error is not None:
                return
            news: dict[str, Any] = {}
            if answer.upstream_task is not None:
                news["upstream_task"] = answer.upstream_task
            self.runs.advance(state, run, answer.progress, **news)

    async def _keep(self, state: AppState, channel: ChannelInfo, url: str) -> StoredMedia:
        """The video, downloaded into the media store (a broken download is tried again)."""
        limit = state.settings.chat_video_max_bytes
        attempt = 0
        while True:
            try:
                data = await self._download(state, channel, url, limit)
            except FetchRefused as refused:
                message = f"the upstream's video link is not fetched: {refused.message}"
                raise RunFailed(message, "upstream_bad_url") from None
            except UpstreamFailure as failure:
                attempt += 1
                if attempt == _DOWNLOAD_TRIES:
                    message = f"the video could not be downloaded from the upstream: {failure.message}"
                    raise RunFailed(message, "download_failed") from None
                await asyncio.sleep(attempt)
                continue
            ext = sniff(data)
            if ext not in _VIDEO_EXTS:
                raise RunFailed("the upstream's link is not a video (mp4 or webm)", "upstream_bad_url")
            return await state.media.save(data, ext)

    async def _download(self, state: AppState, channel: ChannelInfo, url: str, limit: int) -> bytes:
        """On the channel's own origin (its operator chose it) with the channel's key; anywhere else
        the upstream chose the address: through the guarded fetcher, without credentials."""
        if channel.same_origin(url):
            headers = {"Authorization": f"Bearer {channel.secret}"} if channel.secret else {}
            return await state.upstream.download(url, channel_timeouts(state, channel), limit, headers)
        return (await state.fetcher.fetch(url, max_bytes=limit)).data

    # --- the engine's other calls ------------------------------------------------------------------
    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        raise LookupUnsupported("a chat answer cannot be looked up: whether the request arrived is unknown")

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        answers: list[Polled] = []
        for task in tasks:
            news = self.runs.take(task)
            if news is not None:
                answers.append(news)
            elif await self.runs.runner_gone(ctx.state, task):
                message = (
                    "the gateway process reading the upstream's answer stopped before it ended; a chat "
                    "upstream cannot be asked for it again"
                )
                answers.append(Polled(task.id, FAILED, task.progress, {ERROR_CODE: LOST}, message))
        return answers

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        name = task.result.get("media")
        info = await ctx.media.stat(str(name)) if name else None
        self.runs.forget(task.id)
        if info is None:
            raise RuntimeError("the task's video is not in the media store")
        return [_stored(ctx, info.name, info.size, info.content_type)]

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        await self.runs.cancel(task.id)  # closing the answer is all a chat upstream understands


def _stored(ctx: TaskContext, name: str, size: int, content_type: str) -> StoredMedia:
    from aitre.media.store import StoredMedia

    return StoredMedia(name, ctx.media.url(name), size, content_type)


class ChatVideoAdapter:
    """The relay's view of the channel type: it forwards nothing and makes no images (its models
    run as tasks); its probe and balance are an OpenAI-compatible upstream's."""

    def __init__(self) -> None:
        self._openai = OpenAICompatAdapter()

    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        return None

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        return await self._openai.probe(state, channel)

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return await self._openai.balance(state, channel)


def register(registry: TaskRegistry) -> None:
    """Both kinds on `chat-video` channels, sharing one set of readers (closed at shutdown)."""
    runs = Runs()
    for kind in (VIDEO_KIND, REMOVER_KIND):
        registry.add_protocol(CHANNEL_TYPE, ChatVideoProtocol(kind, runs))
    registry.add_closer(runs.close)
