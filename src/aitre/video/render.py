"""A video task as OpenAI's `Video` object (the API's answer, and the notifyHook body), and which of
its kept files is which.

The engine's statuses map onto OpenAI's four: not yet upstream is `queued`; running is what the
upstream last said (`queued` or `in_progress`); succeeded is `completed`; failed, timed out and
cancelled are `failed`, with the reason in `error`. Files are kept in a fixed order: the video,
then the thumbnail and the spritesheet when the upstream offered them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aitre.tasks.protocol import CANCELLED, FAILED, RUNNING, SUCCEEDED, WAITING, Renderer, TaskView
from aitre.video.models import DEFAULT_SECONDS, DEFAULT_SIZE

if TYPE_CHECKING:
    from aitre.media.store import MediaStore

VARIANTS = ("video", "thumbnail", "spritesheet")  # the order of a video task's `media`


def status_of(task: TaskView) -> str:
    if task.status == SUCCEEDED:
        return "completed"
    if task.status in (FAILED, CANCELLED):
        return "failed"
    if task.status == WAITING or (task.status == RUNNING and task.result.get("upstream_status") != "queued"):
        return "in_progress"
    return "queued"


def media_of(task: TaskView, variant: str) -> dict[str, Any] | None:
    """The kept file of one variant (`video`, `thumbnail`, `spritesheet`), if there is one."""
    index = VARIANTS.index(variant)
    files = [m for m in task.media if isinstance(m, dict) and isinstance(m.get("name"), str)]
    return files[index] if index < len(files) else None


def error_of(task: TaskView) -> dict[str, str]:
    """The upstream's own error when a protocol kept one (`result.error`; or its code alone in
    `result.error_code`, as the chat side keeps it), else the engine's."""
    kept = task.result.get("error")
    if isinstance(kept, dict) and isinstance(kept.get("message"), str) and isinstance(kept.get("code"), str):
        return {"code": kept["code"], "message": kept["message"]}
    code = task.result.get("error_code")
    return {
        "code": code if isinstance(code, str) and code else task.error_code or "video_generation_failed",
        "message": task.error or "The video could not be made.",
    }


def expires_at(task: TaskView, retention_days: float) -> int | None:
    """When the kept files may be gone: retention counts from when they were written, which is
    after the task started, so counting from its start promises no more than the store keeps."""
    if task.status != SUCCEEDED or retention_days <= 0:
        return None
    return (task.started_at or task.created_at) // 1000 + int(retention_days * 86400)


def video_object(task: TaskView, retention_days: float) -> dict[str, Any]:
    request = task.request
    status = status_of(task)
    progress = 100 if status == "completed" else max(0, min(99, task.progress))
    return {
        "id": task.id,
        "object": "video",
        "model": task.model,
        "status": status,
        "progress": 0 if status == "queued" and task.status != RUNNING else progress,
        "created_at": task.created_at // 1000,
        "completed_at": task.finished_at // 1000 if task.finished_at else None,  # completed or failed
        "expires_at": expires_at(task, retention_days),
        "seconds": str(request.get("seconds") or DEFAULT_SECONDS),
        "size": str(request.get("size") or DEFAULT_SIZE),
        "prompt": request.get("prompt"),
        "remixed_from_video_id": request.get("remix_of"),
        "error": error_of(task) if status == "failed" else None,
    }


def renderer(retention_days: float) -> Renderer:
    """For the notifyHook body and the user's task list: the video object and, once completed,
    `url`, the video's link in the media store (the video API's own answers stay OpenAI's)."""

    def render(task: TaskView, media: MediaStore) -> dict[str, Any]:
        video = media_of(task, "video") if task.status == SUCCEEDED else None
        url = media.url(str(video["name"])) if video is not None else None
        return {**video_object(task, retention_days), "url": url}

    return render
