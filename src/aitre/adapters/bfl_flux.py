"""Black Forest Labs (Flux): an OpenAI images request becomes BFL's asynchronous flow.

Submit `POST {root}/v1/<model>` with `x-key`, poll the `polling_url` the submit returned (it is
region-specific) until `Ready`, download `result.sample` at once (BFL's links expire in about ten
minutes), and answer in OpenAI's images format: our own media URL, or base64.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from aitre.adapters.base import Retryable, json_object
from aitre.errors import ApiError
from aitre.media.rehost import fetch_upstream_media
from aitre.relay.errors import RETRYABLE_STATUS, error_from_failure, error_from_status
from aitre.relay.outcome import finish, note_attempt
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import Timeouts, UpstreamFailure, UpstreamRequest, answers, read_body
from aitre.relay.usage import Usage

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

# Models that take an aspect ratio instead of a width and height.
_ASPECT_MODELS = ("flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max")
_ASPECTS = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "4:5", "5:4", "21:9", "9:21")
# BFL-native fields a client may send along with the OpenAI ones; passed through as they are.
_NATIVE_FIELDS = (
    "seed", "steps", "guidance", "safety_tolerance", "prompt_upsampling", "raw", "aspect_ratio",
    "input_image", "image_prompt", "image_prompt_strength", "width", "height",
)  # fmt: skip
_FAILED = {"Request Moderated", "Content Moderated", "Error", "Failed"}


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


class BflAdapter:
    def supports(self, endpoint: str, model: str) -> bool:
        return endpoint == "images.generations"

    async def execute(self, state: AppState, job: RelayJob, channel: ChannelInfo) -> ASGIApp:
        body = job.body
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise ApiError(400, "n must be an integer between 1 and 10", param="n")
        model = job.upstream_model(channel)
        payload = {"prompt": body["prompt"], **size_params(model, body.get("size"))}
        payload.update({k: body[k] for k in _NATIVE_FIELDS if k in body})
        payload["output_format"] = "png" if body.get("output_format") == "png" else "jpeg"
        timeouts = channel_timeouts(state, channel)
        samples = await asyncio.gather(
            *(self._one(state, job, channel, model, payload, timeouts) for _ in range(n))
        )
        want_b64 = body.get("response_format") == "b64_json"
        data = []
        for sample in samples:
            if want_b64:
                data.append({"b64_json": base64.b64encode(sample).decode(), "revised_prompt": body["prompt"]})
            else:
                stored = await state.media.save(sample)
                data.append({"url": stored.url, "revised_prompt": body["prompt"]})
        finish(state, job, channel, 200, "", Usage(images=n))
        answer = {"created": int(time.time()), "data": data}
        return Response(
            orjson.dumps(answer), media_type="application/json", headers={"x-request-id": job.request_id}
        )

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return None  # BFL reports no balance through its API

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        # An unknown id is answered 200 "Task not found" with a valid key, 401/403 without.
        req = UpstreamRequest(
            "GET", f"{channel.root_url()}/v1/get_result?id=aitre-probe", {"x-key": channel.secret}
        )
        return await answers(state.upstream, req, channel_timeouts(state, channel))

    async def _one(
        self,
        state: AppState,
        job: RelayJob,
        channel: ChannelInfo,
        model: str,
        payload: dict[str, Any],
        timeouts: Timeouts,
    ) -> bytes:
        headers = {"x-key": channel.secret, "Content-Type": "application/json", "Accept": "application/json"}
        url = f"{channel.root_url()}/v1/{model}"
        submitted = await self._call(
            state, job, channel, UpstreamRequest("POST", url, headers, orjson.dumps(payload)), timeouts
        )
        polling_url = (
            submitted.get("polling_url") or f"{channel.root_url()}/v1/get_result?id={submitted.get('id')}"
        )
        sample_url = await self._poll(state, job, channel, str(polling_url), headers, timeouts)
        # The sample's address is the upstream's choice: the guarded fetcher unless on its origin.
        return await fetch_upstream_media(state, channel, sample_url, headers)

    async def _call(
        self, state: AppState, job: RelayJob, channel: ChannelInfo, req: UpstreamRequest, timeouts: Timeouts
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            resp = await state.upstream.send(req, timeouts)
            try:
                raw = await read_body(resp, timeouts, 1024 * 1024)
            finally:
                resp.release()
        except UpstreamFailure as failure:
            note_attempt(job, channel, 0, (time.perf_counter() - t0) * 1000, failure.message)
            raise Retryable(error_from_failure(failure)) from failure
        if resp.status >= 400:
            error = error_from_status(resp.status, raw, resp.headers)
            note_attempt(job, channel, resp.status, (time.perf_counter() - t0) * 1000, error.message)
            if resp.status in RETRYABLE_STATUS or resp.status in (401, 402, 403):
                raise Retryable(error)
            raise ApiError(400, f"Flux refused the request: {error.message}", code="invalid_request")
        return json_object(raw, "Flux")

    async def _poll(
        self,
        state: AppState,
        job: RelayJob,
        channel: ChannelInfo,
        polling_url: str,
        headers: dict[str, str],
        timeouts: Timeouts,
    ) -> str:
        interval = float(channel.config.get("poll_interval", 0.5))
        deadline = time.monotonic() + float(channel.config.get("task_timeout", 300))
        not_found = 0
        req_headers = headers if channel.same_origin(polling_url) else {"Accept": "application/json"}
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            result = await self._call(
                state, job, channel, UpstreamRequest("GET", polling_url, req_headers), timeouts
            )
            status = result.get("status")
            if status == "Ready":
                sample = (result.get("result") or {}).get("sample")
                if isinstance(sample, str) and sample:
                    return sample
                raise Retryable(ApiError(502, "Flux reported Ready without an image", type="upstream_error"))
            if status in ("Request Moderated", "Content Moderated"):
                raise ApiError(400, f"Flux refused the prompt ({status}).", code="content_policy_violation")
            if status in _FAILED:
                raise Retryable(ApiError(502, f"Flux generation failed: {status}", type="upstream_error"))
            if status == "Task not found":
                not_found += 1  # right after submit this can be transient
                if not_found > 5:
                    raise Retryable(ApiError(502, "Flux lost the task", type="upstream_error"))
        raise Retryable(
            ApiError(502, "Flux did not finish in time", type="upstream_error", code="upstream_timeout")
        )
