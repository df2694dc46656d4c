"""The words of a chat answer about a task: its opening line, progress lines, the final link, a
failure, a task still running when a non-streamed request stops waiting; and the error a failed
task is answered with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitre.chattask.models import VIDEO_KIND
from aitre.chattask.runs import ERROR_CODE
from aitre.errors import ApiError
from aitre.tasks.protocol import CANCELLED_CODE, NO_CHANNEL, TIMEOUT

if TYPE_CHECKING:
    from aitre.media.store import MediaStore
    from aitre.tasks.protocol import TaskView

# Task error codes that say the request itself cannot be done (trying again will not help).
CLIENT_FAULTS = frozenset(
    {
        "task_refused",
        "upstream_refused",
        "invalid_url",
        "not_a_video",
        "unsupported_video",
        "video_too_large",
        "video_too_long",
        "resolution_too_large",
        "no_watermark_found",
        "moderation_blocked",  # the upstream's content policy refused the prompt or the image
        "content_policy_violation",
    }
)


def _what(task: TaskView) -> str:
    return "Video generation" if task.kind == VIDEO_KIND else "Watermark removal"


def opening(task: TaskView) -> str:
    return f"> Task `{task.id}` queued\n\n"


def progress(value: int) -> str:
    return f"> progress {value}%\n\n"


def link(task: TaskView, media: MediaStore) -> str | None:
    for item in task.media:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            return media.url(item["name"])
    return None


def done(task: TaskView, url: str) -> str:
    if task.kind == VIDEO_KIND:
        return f"video generated successful,[click here]({url})"
    return f"watermark removed successfully,[click here]({url})"


def failed(task: TaskView) -> str:
    refunded = "refunded" if task.reserved else "nothing charged"
    return f"> ❌ {_what(task)} failed: {task.error or 'the task failed'} (task `{task.id}`; {refunded})\n\n"


def where(task: TaskView) -> str:
    """Where a task's state can be read later."""
    own = f"GET /api/user/tasks/{task.id}"
    return f"GET /v1/videos/{task.id} (or {own})" if task.kind == VIDEO_KIND else own


def still_running(task: TaskView) -> str:
    thing = (
        "The video is still being made" if task.kind == VIDEO_KIND else "The watermark is still being removed"
    )
    return (
        f"{thing} (task `{task.id}`, {task.status}, {task.progress}%). It goes on: follow it with "
        f"{where(task)}; the link is there when it is done."
    )


def error(task: TaskView) -> ApiError:
    """A failed (or cancelled) task, as the error that answers its request."""
    code = str(task.result.get(ERROR_CODE) or task.error_code or "task_failed")
    message = f"{_what(task)} failed: {task.error or 'the task failed'} (task {task.id}; refunded)."
    headers = {"x-aitre-task-id": task.id}
    if code in CLIENT_FAULTS:
        status = 422 if code == "no_watermark_found" else 400
        return ApiError(status, message, code=code, headers=headers)
    if code == CANCELLED_CODE:
        return ApiError(409, message, code=code, headers=headers)
    status = {TIMEOUT: 504, NO_CHANNEL: 503}.get(code, 502)
    kind = "upstream_error" if status == 502 else "server_error"
    return ApiError(status, message, type=kind, code=code, headers=headers)


def lost(task: TaskView) -> str:
    return f"> The task `{task.id}` can no longer be followed here; see {where(task)}.\n\n"


def lost_error(task: TaskView) -> ApiError:
    return ApiError(
        500, f"The task {task.id} can no longer be followed.", type="server_error", code="task_not_found"
    )
