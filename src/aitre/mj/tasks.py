"""An MJ task as midjourney-proxy clients see it, rendered from aitre's task row.

The row keeps the engine's status and progress, the request aitre checked (`request`), and what
the upstream last reported (`result`: its status, prompts, buttons with upstream customIds, the
upstream picture's link). Clients get midjourney-proxy's task object, with aitre's id, aitre's
buttons (customIds naming aitre's task) and aitre's own `/media/...` link for the picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aitre.mj.custom_ids import present_buttons

if TYPE_CHECKING:
    from aitre.media.store import MediaStore
    from aitre.tasks.protocol import TaskView

# engine status -> MJ status; `running` is refined by the upstream's own status below
_STATUS = {
    "queued": "NOT_START",
    "submitting": "SUBMITTED",
    "running": "IN_PROGRESS",
    "waiting": "MODAL",
    "succeeded": "SUCCESS",
    "failed": "FAILURE",
    "cancelled": "CANCEL",
}
_DESCRIPTIONS = {
    "NOT_START": "Waiting to be submitted",
    "SUBMITTED": "Submit success",
    "IN_PROGRESS": "In progress",
    "MODAL": "Waiting for window confirm",
    "SUCCESS": "Success",
    "FAILURE": "Failure",
    "CANCEL": "Cancelled",
}


def mj_status(task: TaskView) -> str:
    status = _STATUS.get(task.status, "NOT_START")
    if status == "IN_PROGRESS" and not task.progress and task.result.get("status") != "IN_PROGRESS":
        return "SUBMITTED"  # the upstream has it but has not started it (or not said so yet)
    return status


def media_url(task: TaskView, media: MediaStore) -> str | None:
    """aitre's own link to the task's picture (the first file it kept)."""
    for item in task.media or ():
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            return media.url(item["name"])
    return None


def render(task: TaskView, media: MediaStore) -> dict[str, Any]:
    """midjourney-proxy's task object (the fetch answer, the notifyHook body)."""
    request, result = task.request or {}, task.result or {}
    status = mj_status(task)
    props = dict(result.get("properties") or {})
    mode = result.get("mode") or request.get("mode")
    if mode:
        props["mode"] = mode
    props.setdefault("finalPrompt", result.get("promptEn") or request.get("prompt") or "")
    done = status == "SUCCESS"
    buttons = (result.get("buttons") or []) if done else []
    return {
        "id": task.id,
        "action": task.action.upper(),  # kept lower-case on the row (usage logs: `mj.imagine`)
        "customId": request.get("customId"),
        "botType": request.get("botType") or "MID_JOURNEY",
        "prompt": result.get("prompt") if result.get("prompt") is not None else request.get("prompt", ""),
        "promptEn": result.get("promptEn") or "",
        "description": result.get("description") or _DESCRIPTIONS[status],
        "state": task.client_state,
        "submitTime": task.created_at,
        "startTime": task.started_at,
        "finishTime": task.finished_at,
        "imageUrl": media_url(task, media) if done or status == "FAILURE" else None,
        "status": status,
        "progress": "" if status == "FAILURE" else f"{100 if done else max(0, min(99, task.progress))}%",
        "failReason": (task.error or "Failure") if status in ("FAILURE", "CANCEL") else None,
        "buttons": present_buttons(buttons, task.id, props.get("messageHash")),
        "maskBase64": None,
        "properties": {k: v for k, v in props.items() if k in _SHOWN_PROPERTIES},
    }


# Upstream properties clients may see; Discord and account ids stay with aitre.
_SHOWN_PROPERTIES = ("finalPrompt", "finalZhPrompt", "mode", "numberOfQueues")
