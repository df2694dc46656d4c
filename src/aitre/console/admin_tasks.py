"""Operator pages: tasks (MJ, videos) with previews — pictures shown, videos playable, MJ
buttons shown and, on the operator's own tasks, pressable (through the MJ API, with their key:
an operator cannot press buttons on another user's task, the MJ API would not let them) — and
cancelling a task or sending a failed notifyHook call again."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from aitre.api.admin import tasks as tasks_api
from aitre.console.common import keep, page_of, positive
from aitre.console.web import Ctx
from aitre.errors import ApiError
from aitre.tasks.protocol import STATUSES

TASK_FILTERS = ("status", "kind", "user_id", "channel_id", "action", "since", "until")


def preview(media: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The task's files as the page shows them: relative links (same origin), kind by type."""
    out = []
    for m in media or ():
        name, kind = str(m.get("name", "")), str(m.get("content_type", ""))
        if name:
            shown = "image" if kind.startswith("image/") else "video" if kind.startswith("video/") else "file"
            out.append({"url": "/media/" + name, "kind": shown, "type": kind, "name": name})
    return out


async def tasks(ctx: Ctx) -> Response:
    q = ctx.query
    page = page_of(q, 25)
    found = await tasks_api.list_tasks(
        ctx.state,
        page,
        status=q.get("status") or None,
        kind=(q.get("kind") or "").strip()[:32] or None,
        user_id=positive(q.get("user_id"), "user_id"),
        channel_id=positive(q.get("channel_id"), "channel_id"),
        action=(q.get("action") or "").strip()[:32] or None,
        since=q.get("since") or None,
        until=q.get("until") or None,
    )
    rows = [(t, preview(t.media)) for t in found.data]
    return ctx.render(
        "admin/tasks.html",
        title="Tasks",
        page=found,
        rows=rows,
        q=q,
        query=keep(q, *TASK_FILTERS),
        statuses=["", "open", *STATUSES],
        any_open=any(not t.finished_at for t in found.data),
    )


async def task(ctx: Ctx) -> Response:
    task_id = ctx.param("id")[:64]
    found = await tasks_api.get_task(ctx.state, task_id)
    buttons: list[dict[str, Any]] = []
    if found.kind == "mj":
        from aitre.mj.tasks import render

        view = await ctx.state.tasks.get(task_id)
        if view is not None:
            buttons = render(view, ctx.state.media)["buttons"]
    return ctx.render(
        "admin/task.html",
        title=f"Task {found.id}",
        t=found,
        media=preview(found.media),
        buttons=buttons,
        own=found.user_id == ctx.who.user_id,
    )


async def cancel(ctx: Ctx) -> Response:
    task_id = ctx.param("id")[:64]
    try:
        await tasks_api.cancel_task(ctx.state, task_id)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return ctx.redirect(f"/admin/tasks/{task_id}", error=exc.message)
    return ctx.redirect(f"/admin/tasks/{task_id}", ok="Task cancelled and refunded.")


async def retry_delivery(ctx: Ctx) -> Response:
    delivery_id = positive(ctx.param("id"), "id")
    assert delivery_id is not None
    done = await tasks_api.retry_delivery(ctx.state, delivery_id)
    return ctx.redirect(f"/admin/tasks/{done.task_id}", ok=f"notifyHook call #{done.id} will be sent again.")
