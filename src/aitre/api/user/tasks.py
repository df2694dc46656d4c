"""/api/user/tasks: the caller's own tasks (videos and removals asked for by chat, MJ pictures...),
each as its kind shows it, with the links to its files; cancelling one.

A chat request for a video answers with the task's id; a client that left, or stopped waiting,
follows the task here (a video also at `GET /v1/videos/{id}`). Another user's task is 404, as
one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aitre.api.admin.schemas import Page
from aitre.api.deps import CallerDep, PageDep, StateDep, domain_errors
from aitre.errors import ApiError
from aitre.state import AppState
from aitre.tasks.protocol import STATUSES, TaskFilter, TaskView

router = APIRouter(tags=["user: tasks"])

_MAX_ID = 64


def _shown(state: AppState, task: TaskView) -> dict[str, Any]:
    return state.tasks.registry.render(task, state.media)


async def _own(state: AppState, user_id: int, task_id: str) -> TaskView:
    task = await state.tasks.get(task_id, user_id) if len(task_id) <= _MAX_ID else None
    if task is None:
        raise ApiError(404, f"No task {task_id[:_MAX_ID]}.", code="not_found")
    return task


@router.get("/tasks", summary="My tasks, newest first")
async def list_tasks(
    state: StateDep,
    caller: CallerDep,
    page: PageDep,
    kind: Annotated[str | None, Query(max_length=32, description="video, sora_remover, mj, ...")] = None,
    status: Annotated[
        str | None, Query(description=f"One of {', '.join(STATUSES)}, or `open` (not yet ended).")
    ] = None,
) -> Page[dict[str, Any]]:
    with domain_errors():
        if status is not None and status not in (*STATUSES, "open"):
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, or open")
    filt = TaskFilter(deleted=False, user_id=caller.user_id, kind=kind or None, status=status or None)
    tasks, total = await state.tasks.list_tasks(filt, page.page, page.per_page)
    return page.of([_shown(state, t) for t in tasks], total)


@router.get("/tasks/{task_id}", summary="One of my tasks")
async def get_task(state: StateDep, caller: CallerDep, task_id: str) -> dict[str, Any]:
    return _shown(state, await _own(state, caller.user_id, task_id))


@router.post("/tasks/{task_id}/cancel", summary="Cancel one of my open tasks (refunded)")
async def cancel_task(state: StateDep, caller: CallerDep, task_id: str) -> dict[str, Any]:
    await _own(state, caller.user_id, task_id)
    with domain_errors():
        return _shown(state, await state.tasks.cancel(task_id, caller.user_id))
