"""Black Forest Labs (Flux): an OpenAI images request becomes BFL's asynchronous flow.

Submit `POST {root}/v1/<model>` with `x-key`, poll the `polling_url` the submit returned (it is
region-specific) until `Ready`, and download `result.sample` at once (BFL's links expire in about
ten minutes). `n` images are `n` such flows at once.

Once BFL has accepted a submit, the operator's account pays for it. From then on nothing makes
the relay submit again elsewhere: a poll that fails for a passing reason (a 5xx, a 429, a
dropped connection, a garbled answer) is simply made again, up to `_POLL_FAILURES` in a row, and
a download up to `_DOWNLOADS` times; a failure that waiting cannot fix (the task failed or was
moderated, the key was refused, the task was lost, the deadline passed) fails the request at
once, without another channel. The client pays nothing for a failed request and may ask
again; the operator's accepted tasks are not doubled behind its back. When one of `n` flows
fails, the others are cancelled at once: their answer could no longer be given.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.base import Retryable, json_object
from aitre.adapters.capability import IMAGES_EDIT
from aitre.adapters.images import Image, ImageRequest, Images, all_or_nothing
from aitre.errors import ApiError
from aitre.media.rehost import fetch_upstream_media
from aitre.relay.errors import RETRYABLE_STATUS, UpstreamError, error_from_failure, error_from_status
from aitre.relay.outcome import note_attempt
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import Timeouts, UpstreamFailure, UpstreamRequest, answers, read_body
from aitre.relay.usage import Usage

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

# Models that take an aspect ratio instead of a width and height.
_ASPECT_MODELS = ("flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max")
_ASPECTS = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "4:5", "5:4", "21:9", "9:21")
# Models that edit: Kontext takes one input image, FLUX.2 up to eight (input_image, _2 ... _8).
_EDIT_MODELS = {
    "flux-kontext-pro": 1,
    "flux-kontext-max": 1,
    "flux-2-pro": 8,
    "flux-2-max": 8,
    "flux-2-flex": 8,
}
# BFL-native fields a client may send along with the OpenAI ones; passed through as they are.
_NATIVE_FIELDS = (
    "seed", "steps", "guidance", "safety_tolerance", "prompt_upsampling", "raw", "aspect_ratio",
    "input_image", "image_prompt", "image_prompt_strength", "width", "height",
)  # fmt: skip
_FAILED = {"Error", "Failed"}
_MODERATED = {"Request Moderated", "Content Moderated"}
_SAMPLE_LIMIT = 64 * 1024 * 1024
_ANSWER_LIMIT = 1024 * 1024
_POLL_FAILURES = 5  # passing poll failures in a row before the task is given up
_DOWNLOADS = 3
_NOT_FOUND = 5  # "Task not found" right after a submit can be transient


def size_params(model: str, size: str | None) -> dict[str, Any]:
    """OpenAI's `WxH` as BFL wants it: width/height (multiples of 32, 256–1440) or a ratio."""
    width, height = 1024, 1024
    if size and size != "auto":
        w, sep, h = size.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
            raise ApiError(400, f"size must look like 1024x768, not {size!r}", param="size")
        width, height = int(w), int(h)
    if model in _ASPECT_MODELS:
        ratio = width / height
        best = min(_ASPECTS, key=lambda a: abs(math.log(ratio * int(a.split(":")[1]) / int(a.split(":")[0]))))
        return {"aspect_ratio": best}

    def snap(v: int) -> int:
        return min(1440, max(256, round(v / 32) * 32))

    return {"width": snap(width), "height": snap(height)}


def _final(error: ApiError) -> ApiError:
    """A failure after BFL accepted a task: the same error, but no other channel may take it."""
    final = UpstreamError(
        error.status, error.message, type=error.type, code=error.code, detail=_detail(error)
    )
    final.headers = dict(error.headers)
    return final


def _detail(error: ApiError) -> str:
    return error.detail if isinstance(error, UpstreamError) else error.message


@dataclass(slots=True)
class _Spent:
    accepted: int = 0  # submits BFL accepted for this attempt: each one is paid for


class BflAdapter:
    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None  # BFL speaks no OpenAI format

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        if capability == IMAGES_EDIT and model not in _EDIT_MODELS:
            return None
        return self.make

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return None  # BFL reports no balance through its API

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        # An unknown id is answered 200 "Task not found" with a valid key, 401/403 without.
        req = UpstreamRequest(
            "GET", f"{channel.root_url()}/v1/get_result?id=aitre-probe", {"x-key": channel.secret}
        )
        return await answers(state.upstream, req, channel_timeouts(state, channel))

    async def make(
        self, state: AppState, job: RelayJob, channel: ChannelInfo, request: ImageRequest
    ) -> Images:
        fields, n = request.fields, request.n
        if not 1 <= n <= 10:
            raise ApiError(400, "n must be an integer between 1 and 10", param="n")
        model = job.upstream_model(channel)
        payload = {"prompt": request.prompt, **size_params(model, request.size)}
        payload.update({k: fields[k] for k in _NATIVE_FIELDS if k in fields})
        for i, ref in enumerate(request.references[: _EDIT_MODELS.get(model, 0)]):
            payload["input_image" if i == 0 else f"input_image_{i + 1}"] = base64.b64encode(ref.data).decode()
        payload["output_format"] = "png" if fields.get("output_format") == "png" else "jpeg"
        flow = _Flow(state, job, channel, model, channel_timeouts(state, channel))
        spent = _Spent()

        async def one() -> bytes:
            task = await flow.submit(payload)
            spent.accepted += 1
            return await flow.result(task)

        try:
            samples = await all_or_nothing([one() for _ in range(n)])
        except Retryable as retry:
            if spent.accepted:  # a sibling's submit failed after others were paid for
                raise _final(retry.error) from None
            raise
        extra = {"revised_prompt": request.prompt}
        return Images([Image(data=s, extra=dict(extra)) for s in samples], Usage(images=n))


@dataclass(slots=True)
class _Flow:
    """Submit, poll and download, for one request on one channel."""

    state: AppState
    job: RelayJob
    channel: ChannelInfo
    model: str
    timeouts: Timeouts

    @property
    def _headers(self) -> dict[str, str]:
        return {
            "x-key": self.channel.secret,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    async def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A task BFL accepted; `Retryable` when another channel may take the request instead."""
        root = self.channel.root_url()
        req = UpstreamRequest("POST", f"{root}/v1/{self.model}", self._headers, orjson.dumps(payload))
        t0 = time.perf_counter()
        try:
            status, raw, headers = await self._call(req)
        except UpstreamFailure as failure:
            self._note(t0, 0, failure.message)
            raise Retryable(error_from_failure(failure)) from failure
        if status >= 400:
            error = error_from_status(status, raw, headers)
            self._note(t0, status, _detail(error))
            if status in RETRYABLE_STATUS or status in (401, 402, 403) or error.status == 502:
                raise Retryable(error)
            raise ApiError(400, f"Flux refused the request: {error.message}", code="invalid_request")
        self._note(t0, status)
        task = json_object(raw, "Flux")
        if not task.get("id") and not task.get("polling_url"):
            raise Retryable(
                UpstreamError(502, "Flux did not say which task it started", code="upstream_bad_response")
            )
        return task

    async def result(self, task: dict[str, Any]) -> bytes:
        """The image of an accepted task. Every failure here is final (`_final`)."""
        t0 = time.perf_counter()
        try:
            url = await self._poll(task)
            return await self._download(url)
        except Retryable as retry:
            self._note(t0, 0, _detail(retry.error))
            raise _final(retry.error) from None
        except ApiError as error:
            self._note(t0, error.status, _detail(error))
            raise

    async def _poll(self, task: dict[str, Any]) -> str:
        channel = self.channel
        polling_url = str(
            task.get("polling_url") or f"{channel.root_url()}/v1/get_result?id={task.get('id')}"
        )
        # The key goes only to the channel's own host (a polling URL is the upstream's to choose).
        headers = self._headers if channel.same_origin(polling_url) else {"Accept": "application/json"}
        req = UpstreamRequest("GET", polling_url, headers)
        interval = float(channel.config.get("poll_interval", 0.5))
        deadline = time.monotonic() + float(channel.config.get("task_timeout", 300))
        failures = not_found = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            try:
                result = await self._poll_once(req)
            except Retryable:
                failures += 1
                if failures >= _POLL_FAILURES:
                    raise
                continue
            failures = 0
            status = result.get("status")
            if status == "Ready":
                sample = (result.get("result") or {}).get("sample")
                if isinstance(sample, str) and sample:
                    return sample
                raise Retryable(UpstreamError(502, "Flux reported Ready without an image"))
            if status in _MODERATED:
                raise ApiError(400, f"Flux refused the prompt ({status}).", code="content_policy_violation")
            if status in _FAILED:
                raise Retryable(UpstreamError(502, f"Flux generation failed: {status}"))
            if status == "Task not found":
                not_found += 1
                if not_found > _NOT_FOUND:
                    raise Retryable(UpstreamError(502, "Flux lost the task"))
        raise Retryable(UpstreamError(502, "Flux did not finish in time", code="upstream_timeout"))

    async def _poll_once(self, req: UpstreamRequest) -> dict[str, Any]:
        """One poll: `Retryable` when polling again may help, `ApiError` when it cannot."""
        try:
            status, raw, headers = await self._call(req)
        except UpstreamFailure as failure:
            raise Retryable(error_from_failure(failure)) from failure
        if status >= 400:
            error = error_from_status(status, raw, headers)
            if status in RETRYABLE_STATUS:
                raise Retryable(error)
            raise _final(error)  # the key was refused, the task is gone: waiting will not help
        return json_object(raw, "Flux")

    async def _download(self, url: str) -> bytes:
        # The sample's address is the upstream's choice: the guarded fetcher unless on its origin.
        channel = self.channel
        headers = self._headers if channel.same_origin(url) else None
        for tries in range(1, _DOWNLOADS + 1):
            try:
                return await fetch_upstream_media(self.state, channel, url, headers)
            except Retryable as retry:
                if tries == _DOWNLOADS or retry.error.code == "upstream_bad_url":
                    raise
                await asyncio.sleep(0.2 * tries)
        raise AssertionError("unreachable")

    async def _call(self, req: UpstreamRequest) -> tuple[int, bytes, dict[str, str]]:
        resp = await self.state.upstream.send(req, self.timeouts)
        try:
            raw = await read_body(resp, self.timeouts, _ANSWER_LIMIT)
        finally:
            resp.release()
        return resp.status, raw, resp.headers

    def _note(self, t0: float, status: int, error: str = "") -> None:
        note_attempt(self.job, self.channel, status, (time.perf_counter() - t0) * 1000, error)
