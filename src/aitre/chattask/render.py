"""How the user's task list (`/api/user/tasks`) and notifyHook calls show a removal, and a video
until the `video` kind brings its own object (OpenAI's video object): the state, the link to the
file in aitre's media store, and the error, never the internals (the upstream's own links, the
process that runs it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aitre.chattask.answers import link
from aitre.chattask.models import REMOVER_KIND, VIDEO_KIND
from aitre.chattask.runs import ERROR_CODE

if TYPE_CHECKING:
    from aitre.media.store import MediaStore
    from aitre.tasks.protocol import TaskView
    from aitre.tasks.registry import TaskRegistry

# engine status -> OpenAI's video status
_VIDEO_STATUS = {
    "queued": "queued",
    "submitting": "queued",
    "running": "in_progress",
    "waiting": "in_progress",
}


def _common(task: TaskView, media: MediaStore) -> dict[str, Any]:
    failed = task.status in ("failed", "cancelled")
    code = task.result.get(ERROR_CODE) or task.error_code or task.status
    return {
        "id": task.id,
        "model": task.model,
        "progress": 100 if task.status == "succeeded" else task.progress,
        "created_at": task.created_at // 1000,
        "completed_at": task.finished_at // 1000 if task.finished_at else None,
        "url": link(task, media) if task.status == "succeeded" else None,
        "error": {"code": code, "message": task.error} if failed else None,
    }


def render_removal(task: TaskView, media: MediaStore) -> dict[str, Any]:
    return {"object": "sora_remover.task", "status": task.status, **_common(task, media)}


def render_video(task: TaskView, media: MediaStore) -> dict[str, Any]:
    status = _VIDEO_STATUS.get(task.status, "completed" if task.status == "succeeded" else "failed")
    request = task.request
    return {
        "object": "video",
        "status": status,
        "seconds": request.get("seconds"),
        "size": request.get("size"),
        **_common(task, media),
    }


def register(registry: TaskRegistry) -> None:
    registry.add_renderer(REMOVER_KIND, render_removal)
    if VIDEO_KIND not in registry.renderers:  # the `video` kind's own object, when it is there, wins
        registry.add_renderer(VIDEO_KIND, render_video)
