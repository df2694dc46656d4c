"""/api/admin/tasks: every task (MJ, videos), filtered and paged; one task with its history and
its notifyHook calls; cancelling a task; sending a failed notifyHook call again."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from aitre.api.admin.schemas import MS, Page
from aitre.api.deps import PageDep, StateDep, domain_errors
from aitre.billing.usage_query import parse_time
from aitre.errors import ApiError
from aitre.tasks.protocol import STATUSES, Delivery, TaskFilter, TaskView

router = APIRouter(tags=["admin: tasks"])

_STATUS_HELP = f"One of {', '.join(STATUSES)}, or `open` (any not yet ended)."


class TaskOut(BaseModel):
    id: str
    kind: str
    action: str
    model: str
    user_id: int
    token_id: int | None
    channel_id: int | None
    upstream_id: str | None
    status: str = Field(description="The engine's status: " + ", ".join(STATUSES) + ".")
    progress: int
    error: str
    error_code: str
    attempts: int = Field(description="Submits started.")
    reserved: int = Field(description="Units held when the task was created.")
    cost: int = Field(description="Units charged when it ended (0 for failures).")
    billed_at: int | None = Field(description=f"When its books closed ({MS}).")
    deleted_at: int | None = Field(None, description=f"When its owner deleted it ({MS}): hidden from them.")
    parent_id: str | None
    notify_hook: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    updated_at: int
    deadline_at: int
    media: list[dict[str, Any]] = Field(
        description="Files kept in the media store (`/media/{name}`): name, content_type, size."
    )

    @classmethod
    def of(cls, task: TaskView) -> TaskOut:
        return cls(**{k: v for k, v in asdict(task).items() if k in cls.model_fields})


class DeliveryOut(BaseModel):
    id: int
    task_id: str
    seq: int
    url: str
    status: str = Field(description="pending, delivered, failed, or superseded (a newer state went instead).")
    attempts: int
    last_error: str
    last_status: int | None = Field(description="The receiver's HTTP status on the last attempt.")
    created_at: int
    next_at: int | None
    delivered_at: int | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(**asdict(delivery))


class TaskDetail(TaskOut):
    request: dict[str, Any]
    result: dict[str, Any]
    history: list[dict[str, Any]]
    client_state: str | None
    deliveries: list[DeliveryOut]


@router.get("/tasks", summary="Tasks, newest first")
async def list_tasks(
    state: StateDep,
    page: PageDep,
    status: Annotated[str | None, Query(description=_STATUS_HELP)] = None,
    kind: Annotated[str | None, Query(description="mj, video, sora_remover, ...")] = None,
    user_id: Annotated[int | None, Query(description="Only this user's tasks.")] = None,
    channel_id: Annotated[int | None, Query(description="Only tasks on this channel.")] = None,
    action: Annotated[str | None, Query(description="e.g. imagine, upscale.")] = None,
    since: Annotated[str | None, Query(description="Created at or after (ms, ISO time, or -7d).")] = None,
    until: Annotated[str | None, Query(description="Created before.")] = None,
) -> Page[TaskOut]:
    with domain_errors():
        if status is not None and status not in (*STATUSES, "open"):
            raise ValueError(f"status must be {_STATUS_HELP[7:]}")
        filt = TaskFilter(
            user_id=user_id,
            kind=kind or None,
            status=status or None,
            channel_id=channel_id,
            action=action or None,
            since=parse_time(since, param="since") if since else None,
            until=parse_time(until, param="until") if until else None,
        )
    tasks, total = await state.tasks.list_tasks(filt, page.page, page.per_page)
    return page.of([TaskOut.of(t) for t in tasks], total)


@router.get("/tasks/{task_id}", summary="One task: its request, result, history and notifyHook calls")
async def get_task(state: StateDep, task_id: str) -> TaskDetail:
    task = await state.tasks.get(task_id)
    if task is None:
        raise ApiError(404, f"No task {task_id}.", code="not_found")
    calls = await state.tasks.deliveries(task_id)
    fields = {k: v for k, v in asdict(task).items() if k in TaskDetail.model_fields}
    return TaskDetail(**fields, deliveries=[DeliveryOut.of(d) for d in calls])


@router.post(
    "/tasks/{task_id}/cancel", summary="Cancel an open task (refunded; the upstream is asked to stop)"
)
async def cancel_task(state: StateDep, task_id: str) -> TaskOut:
    with domain_errors():
        return TaskOut.of(await state.tasks.cancel(task_id))


@router.post("/deliveries/{delivery_id}/retry", summary="Send a failed notifyHook call again")
async def retry_delivery(state: StateDep, delivery_id: int) -> DeliveryOut:
    with domain_errors():
        return DeliveryOut.of(await state.tasks.retry_delivery(delivery_id))
