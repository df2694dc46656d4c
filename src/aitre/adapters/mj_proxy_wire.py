"""midjourney-proxy over HTTP: the calls aitre makes to a proxy (or the simulator), each bounded.

The proxy serves `/mj/...` under its base URL and takes the channel's key in `mj-api-secret`.
Submits answer `{code, description, result, properties}` (HTTP 200 even when refused); a task
fetch answers the task object, or an empty body for an unknown id. Failures that say nothing
about the request (connection, 5xx, 401/403: the channel's own key) raise `Retryable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.base import Retryable
from aitre.errors import ApiError
from aitre.relay.errors import error_from_failure, upstream_message
from aitre.relay.passthrough import channel_timeouts
from aitre.relay.upstream import UpstreamFailure, UpstreamRequest, read_body

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.state import AppState

ANSWER_LIMIT = 4 * 1024 * 1024  # a list of tasks with long prompts; never a picture
IMAGE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    code: int
    description: str
    result: str | None
    properties: dict[str, Any]


def proxy_root(channel: ChannelInfo) -> str:
    """Where `/mj/...` lives: the base URL, without a trailing `/mj` an operator may have added."""
    root = channel.base_url.rstrip("/")
    return root[: -len("/mj")] if root.endswith("/mj") else root


def headers(channel: ChannelInfo) -> dict[str, str]:
    found: dict[str, str] = {"Content-Type": "application/json", "Accept": "application/json"}
    if channel.secret:
        found["mj-api-secret"] = channel.secret
    return found


async def call(
    state: AppState, channel: ChannelInfo, method: str, path: str, body: Any = None, makes_work: bool = False
) -> tuple[int, bytes]:
    """One request to the proxy: (status, body). Raises Retryable when the channel is at fault.
    `makes_work` (a submit): a failure after the request may have reached the proxy is raised as
    the `UpstreamFailure` it is, never as Retryable: the proxy may have started a job, and
    another channel's would be a second one."""
    timeouts = channel_timeouts(state, channel)
    payload = None if body is None else orjson.dumps(body)
    req = UpstreamRequest(method, proxy_root(channel) + path, headers(channel), payload)
    try:
        resp = await state.upstream.send(req, timeouts)
        try:
            raw = await read_body(resp, timeouts, ANSWER_LIMIT)
        finally:
            resp.release()
    except UpstreamFailure as failure:
        if makes_work and failure.kind != "connect":
            raise
        raise Retryable(error_from_failure(failure)) from failure
    if resp.status in (401, 403) or resp.status >= 500 or resp.status == 429:
        message = f"midjourney-proxy answered HTTP {resp.status}: {upstream_message(raw)}"
        raise Retryable(ApiError(502, message, type="upstream_error", code="upstream_error"))
    return resp.status, raw


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        return None


async def submit(state: AppState, channel: ChannelInfo, path: str, body: dict[str, Any]) -> SubmitAnswer:
    status, raw = await call(state, channel, "POST", path, body, makes_work=True)
    data = _json(raw)
    if not isinstance(data, dict) or not isinstance(data.get("code"), int):
        if status >= 400:  # Spring's error object: the proxy refused the request's form
            return SubmitAnswer(4, f"midjourney-proxy refused the request (HTTP {status})", None, {})
        # It answered: the task may exist there, so this is no reason to submit elsewhere.
        raise UpstreamFailure("protocol", "midjourney-proxy answered a submit without a code")
    result = data.get("result")
    props = data.get("properties")
    return SubmitAnswer(
        int(data["code"]),
        str(data.get("description") or "")[:1000],
        None if result is None else str(result),
        props if isinstance(props, dict) else {},
    )


async def tasks(state: AppState, channel: ChannelInfo, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The proxy's tasks by id (`list-by-condition`); ids it does not know are left out."""
    status, raw = await call(state, channel, "POST", "/mj/task/list-by-condition", {"ids": ids})
    data = _json(raw)
    if status != 200 or not isinstance(data, list):
        raise Retryable(
            ApiError(502, f"midjourney-proxy task list failed (HTTP {status})", type="upstream_error")
        )
    return {str(t["id"]): t for t in data if isinstance(t, dict) and t.get("id") is not None}


async def task(state: AppState, channel: ChannelInfo, upstream_id: str) -> dict[str, Any] | None:
    status, raw = await call(state, channel, "GET", f"/mj/task/{upstream_id}/fetch")
    data = _json(raw)
    if status in (200, 204, 404) and data is None:
        return None  # the Java proxy answers an unknown id with an empty body
    if status != 200 or not isinstance(data, dict):
        raise Retryable(
            ApiError(502, f"midjourney-proxy fetch failed (HTTP {status})", type="upstream_error")
        )
    return data


async def image_seed(state: AppState, channel: ChannelInfo, upstream_id: str) -> SubmitAnswer:
    status, raw = await call(state, channel, "GET", f"/mj/task/{upstream_id}/image-seed")
    data = _json(raw)
    if not isinstance(data, dict):
        return SubmitAnswer(9, f"midjourney-proxy answered HTTP {status} without a seed", None, {})
    code = data.get("code")
    result = data.get("result")
    return SubmitAnswer(
        code if isinstance(code, int) else 9,
        str(data.get("description") or "")[:1000],
        None if result is None else str(result),
        {},
    )


async def cancel(state: AppState, channel: ChannelInfo, upstream_id: str) -> None:
    """trueai's cancel; the original proxy has none (404), which is fine: best effort."""
    await call(state, channel, "POST", f"/mj/task/{upstream_id}/cancel", {})


async def download(state: AppState, channel: ChannelInfo, url: str) -> bytes:
    """A finished picture. On the channel's own host the key goes along (and a private address
    is fine: the operator chose it); anywhere else it goes through the guarded fetcher."""
    if channel.same_origin(url) or url.startswith(proxy_root(channel) + "/"):
        timeouts = channel_timeouts(state, channel)
        try:
            return await state.upstream.download(url, timeouts, IMAGE_LIMIT, headers(channel))
        except UpstreamFailure as failure:
            raise Retryable(error_from_failure(failure)) from failure
    try:
        return (await state.fetcher.fetch(url, "imageUrl")).data
    except ApiError as exc:
        raise Retryable(
            ApiError(502, f"cannot download the picture: {exc.message}", type="upstream_error")
        ) from exc
