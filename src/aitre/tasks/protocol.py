"""The task engine's contract: what a task looks like to the code built on the engine, the small
interface each upstream task protocol implements, and what the engine offers the kind's API.

A *kind* ("mj", "video", "sora_remover") is a family of tasks with its own public
API (`/mj/*`, `/v1/videos`): it validates the client's request, prices it, and calls
`TaskService.create`; it renders a task for its clients (its renderer also makes the notifyHook
payload). A *protocol* is one upstream's way of running tasks of a kind (midjourney-proxy for
"mj"): submit, look up after a crash, poll, fetch the result, cancel. Protocols are registered
per channel type (`tasks.registry`); the engine picks the channel, holds the lease, keeps the
row, bills, calls hooks.

Times are integer ms since the epoch; money is integer quota units.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.config import Settings
    from aitre.media.fetch import MediaFetcher
    from aitre.media.store import MediaStore, StoredMedia
    from aitre.relay.upstream import Timeouts, Upstream
    from aitre.state import AppState

# --- engine statuses ------------------------------------------------------------------------------
QUEUED = "queued"  # accepted, not yet sent upstream
SUBMITTING = "submitting"  # a submit is in flight: it may have reached the upstream
RUNNING = "running"  # the upstream has it; polled
WAITING = "waiting"  # needs client input (MJ MODAL); not polled until resumed
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = (QUEUED, SUBMITTING, RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED)

# Codes of `TaskView.error_code` the engine itself sets (a protocol's `TaskRefused` brings its own).
TIMEOUT = "task_timeout"
NO_CHANNEL = "no_channel"
SUBMIT_UNCERTAIN = "submit_uncertain"  # a submit may have reached the upstream; not repeated
UPSTREAM_FAILED = "upstream_failed"
CANCELLED_CODE = "cancelled"


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as stored: a snapshot of its row (read-only; the engine changes the row)."""

    id: str
    kind: str
    action: str
    model: str
    user_id: int
    token_id: int | None
    group: str  # the owner's pricing group when created (channels may be kept for groups)
    status: str
    progress: int  # 0..100
    request: dict[str, Any]  # protocol-neutral input; large binaries are media-store references
    result: dict[str, Any]  # what the protocol reported (MJ buttons, upstream urls, video seconds)
    media: list[dict[str, Any]]  # files kept in the media store: {name, content_type, size}
    error: str
    error_code: str
    channel_id: int | None
    upstream_id: str | None
    submit_key: str  # idempotency key of the current submit (see `TaskProtocol.lookup`)
    attempts: int  # submits started
    hold_id: str
    reserved: int  # units held at create
    cost: int  # units charged when it ended (0 until then, and for failures)
    parent_id: str | None
    notify_hook: str | None
    client_state: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    updated_at: int
    deadline_at: int
    history: list[dict[str, Any]]  # [{at, status, progress, note, channel_id?}], oldest first, capped
    # The engine's bookkeeping: +1 on every change; notifyHook calls made; when its books closed.
    version: int = 0
    notify_seq: int = 0
    billed_at: int | None = None
    channel_pinned: bool = False  # runs on `channel_id` only (TaskSpec.channel_id)
    deleted_at: int | None = None  # its owner deleted it (`TaskService.delete`): hidden from them

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(slots=True)
class TaskSpec:
    """What a kind's API hands `TaskService.create` (it has validated and priced the request)."""

    id: str  # the public id, made by the kind's API (MJ: 16-19 digits; videos: `video_<hex>`); <= 59 chars
    kind: str
    action: str  # e.g. "imagine", "upscale", "create"
    model: str  # the billing model name, e.g. `mj_imagine`, `sora-2`: also what channels must serve
    user_id: int
    token_id: int | None
    group: str
    cost: int  # units reserved now (a durable hold), settled at success, refunded otherwise
    request: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    channel_id: int | None = None  # pin: run on this channel only (MJ actions: the parent's)
    notify_hook: str | None = None  # else the operator's global hook, if any
    client_state: str | None = None
    deadline_s: float | None = None  # default: the kind's timeout from the settings


@dataclass(slots=True)
class Submitted:
    """The upstream took a submit (or `lookup` found one)."""

    upstream_id: str
    status: str = RUNNING  # RUNNING, WAITING, or already SUCCEEDED / FAILED
    progress: int = 0
    result: dict[str, Any] | None = None  # merged into the task's result
    error: str = ""  # when FAILED
    poll_after_s: float | None = None  # the upstream's hint; bounded by the poll settings


@dataclass(slots=True)
class Polled:
    """One task's state as a poll found it."""

    task_id: str
    status: str  # RUNNING, WAITING, SUCCEEDED, FAILED (CANCELLED: the upstream cancelled it)
    progress: int = 0
    result: dict[str, Any] | None = None  # merged into the task's result (None: unchanged)
    error: str = ""
    poll_after_s: float | None = None
    cost: int | None = None  # units to charge at success instead of the reserved amount (capped at it)


class TaskRefused(Exception):
    """A definitive refusal (banned prompt, invalid input): the task fails, is refunded and is not
    retried on another channel."""

    def __init__(self, message: str, code: str = "task_refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class LookupUnsupported(Exception):
    """The protocol cannot tell whether an interrupted submit reached the upstream: the engine
    fails the task with a refund rather than risk a second upstream job."""


@dataclass(slots=True)
class TaskContext:
    """What a protocol may use. Every URL an upstream or a client chose goes through `fetcher`
    (the guarded fetcher); only the channel's own base-URL origin is reached with `upstream`."""

    state: AppState
    settings: Settings
    upstream: Upstream
    fetcher: MediaFetcher
    media: MediaStore
    log: logging.Logger

    def timeouts(self, channel: ChannelInfo) -> Timeouts:
        """The channel's own timeouts (its `config`), else the gateway's."""
        from aitre.relay.passthrough import channel_timeouts

        return channel_timeouts(self.state, channel)

    async def call(
        self,
        channel: ChannelInfo,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        limit: int = 8 * 1024 * 1024,
    ) -> tuple[int, Any]:
        """One JSON call to the channel's upstream (`url` on its origin): the status and the
        decoded answer (None when it is not JSON). Raises `adapters.base.Retryable` when the
        upstream could not be reached (nothing was sent: safe to try elsewhere), and
        `relay.upstream.UpstreamFailure` when the call broke after it was sent (it may have
        arrived)."""
        import orjson

        from aitre.adapters.base import Retryable
        from aitre.errors import upstream_error
        from aitre.relay.upstream import UpstreamFailure, UpstreamRequest, read_body

        sent = (
            {"Content-Type": "application/json", **(headers or {})}
            if body is not None
            else dict(headers or {})
        )
        data = orjson.dumps(body) if body is not None else None
        timeouts = self.timeouts(channel)
        try:
            resp = await self.upstream.send(UpstreamRequest(method, url, sent, data), timeouts)
        except UpstreamFailure as failure:
            if failure.kind == "connect":
                raise Retryable(upstream_error(502, failure.message, "upstream_unreachable")) from failure
            raise
        try:
            raw = await read_body(resp, timeouts, limit)
        finally:
            resp.release()
        try:
            return resp.status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return resp.status, None


class TaskProtocol(Protocol):
    """One upstream task protocol (e.g. midjourney-proxy). Registered per channel type."""

    kind: str  # the task kind it serves
    poll_batch: int  # most tasks one `poll` call takes (1: one by one)

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        """Whether this channel can run this task (its model, its action)."""
        ...

    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        """Send the task upstream, carrying `task.submit_key` where the upstream can keep it
        (an idempotency key, or a field it echoes back) so `lookup` can find it. A resumed task
        (`TaskService.resume`) comes here again with its `upstream_id` set.

        Raise `TaskRefused` for a definitive refusal; `adapters.base.Retryable` when nothing
        reached the upstream and another channel or a later try may succeed. Any other error
        means the submit may have reached the upstream: the engine then calls `lookup`, never
        `submit` blindly."""
        ...

    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        """After an interrupted submit: find it upstream by `task.submit_key`. None: it is
        certainly not there (the engine may submit again with the same key). Raise
        `LookupUnsupported` when it cannot be known."""
        ...

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        """The state of up to `poll_batch` running tasks of this channel. A task left out of the
        answer is polled again later; an exception fails no task (polled again, until its
        deadline)."""
        ...

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        """Download the finished task's files into the media store at once (upstream links
        expire). `task.result` is the merged result of the final poll. `TaskRefused`: they can
        never be kept (the task fails, refunded); any other exception: tried again on the next
        round (until the deadline)."""
        ...

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        """Best effort: ask the upstream to stop (or nothing, where it cannot)."""
        ...


# The kind's rendering of a task for its clients (e.g. the MJ task object); also the notifyHook body.
Renderer = Callable[[TaskView, "MediaStore"], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TaskFilter:
    user_id: int | None = None
    kind: str | None = None
    status: str | None = None  # one engine status, or "open" (any but the terminal ones)
    channel_id: int | None = None
    action: str | None = None
    since: int | None = None  # created_at >= since (ms)
    until: int | None = None  # created_at < until (ms)
    deleted: bool | None = None  # True: only deleted tasks; False: none of them; None: both


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notifyHook call of a task (one per change of a task with a hook)."""

    id: int
    task_id: str
    seq: int
    url: str
    status: str  # pending, delivered, failed, superseded
    attempts: int
    last_error: str
    last_status: int | None  # the receiver's HTTP status on the last attempt
    created_at: int
    next_at: int | None
    delivered_at: int | None
    payload: dict[str, Any]


class TaskService(Protocol):
    """What the engine (`state.tasks`) offers the kind APIs, the admin API and the CLI."""

    async def create(self, spec: TaskSpec) -> TaskView:
        """Reserve `spec.cost` as a durable hold (402 `insufficient_quota` before anything is
        written when it cannot be), insert the row `queued` (a duplicate id: 409, refunded) and
        start it in this process; returns at once."""
        ...

    async def get(self, task_id: str, user_id: int | None = None) -> TaskView | None:
        """The task, if it exists and (unless `user_id` is None: an admin) belongs to `user_id`
        and was not deleted by them."""
        ...

    async def get_many(self, task_ids: list[str], user_id: int | None = None) -> list[TaskView]:
        """Several tasks by id, in the order asked, skipping unknown ones and others' ones (and,
        for a user, deleted ones)."""
        ...

    async def list_tasks(
        self, filters: TaskFilter, page: int = 1, per_page: int = 50
    ) -> tuple[list[TaskView], int]:
        """Tasks matching `filters`, newest first, and how many match in all."""
        ...

    async def seek(
        self, filters: TaskFilter, after: TaskView | None, limit: int, ascending: bool = False
    ) -> tuple[list[TaskView], bool]:
        """Up to `limit` tasks matching `filters` that come after `after` (a cursor: a task of
        the last page) in creation order, newest first unless `ascending`, and whether more
        follow. Stable while tasks are added, unlike page numbers."""
        ...

    async def cancel(self, task_id: str, user_id: int | None = None) -> TaskView:
        """End an open task as cancelled (refunded; the upstream asked to stop). 404 when it is not
        found (or not the caller's), 409 `task_finished` when it had already ended."""
        ...

    async def delete(self, task_id: str, user_id: int | None = None) -> TaskView:
        """Its owner deletes the task: cancelled first if it is open, then marked deleted
        (`deleted_at`; the row and its books stay, for the operator). Its media are the kind's to
        remove. 404 when it is not found, not the caller's, or deleted already."""
        ...

    async def resume(self, task_id: str, patch: dict[str, Any], user_id: int | None = None) -> TaskView:
        """Give a `waiting` task its input: `patch` is merged into its request and it is
        submitted again (on its channel). 404 / 409 `task_not_waiting` otherwise."""
        ...

    async def poll_now(self, task_id: str) -> bool:
        """An upstream said the task changed (its callback): poll it now, in this process,
        rather than at its next poll time. False when it is not running, or a worker holds it
        (being polled already)."""
        ...

    def watch(self, task_id: str, interval_s: float = 1.0) -> AsyncIterator[TaskView]:
        """The task now, then each time it changes, until it ends (changes made in this process
        are seen at once; others' within `interval_s`)."""
        ...

    async def deliveries(self, task_id: str) -> list[Delivery]:
        """The task's notifyHook calls, oldest first."""
        ...

    async def retry_delivery(self, delivery_id: int) -> Delivery:
        """Send a failed delivery again (its attempts start over). 404 / 409 when not failed."""
        ...
