"""`aitre task ...`: list, show and cancel tasks, send a failed notifyHook call again.

The CLI works on the database; the running gateways do the rest: a task cancelled here is
refunded, and its upstream asked to stop, by the next gateway worker that looks (within
`AITRE_TASK_IDLE_CHECK_SECONDS`); a delivery sent again goes out the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts.repo import find_user
from aitre.billing.usage_query import iso_time, parse_time
from aitre.channels.repo import find_channel
from aitre.cli.common import JsonOption, console, run_db, settings, table
from aitre.errors import ConflictError, NotFoundError
from aitre.media.store import LocalMediaStore
from aitre.secrets import SecretBox
from aitre.store.models import now_ms
from aitre.tasks import deliveries, repo
from aitre.tasks.changes import Recorder
from aitre.tasks.ending import cancelled
from aitre.tasks.protocol import STATUSES, Delivery, TaskFilter, TaskView
from aitre.tasks.registry import build_task_registry

app = typer.Typer(no_args_is_help=True)


@app.command("list", help="Tasks, newest first, filtered.")
def list_(
    status: Annotated[str | None, typer.Option(help=f"{', '.join(STATUSES)}, or open.")] = None,
    kind: Annotated[str | None, typer.Option(help="mj, video, ...")] = None,
    user: Annotated[str | None, typer.Option(help="User name or id.")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel id or name.")] = None,
    since: Annotated[str | None, typer.Option(help="Created from: ISO time, ms, or -7d.")] = None,
    page: Annotated[int, typer.Option(min=1, help="Page number, from 1.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")] = 50,
    as_json: JsonOption = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> tuple[list[TaskView], int]:
        if status is not None and status not in (*STATUSES, "open"):
            raise ValueError(f"--status must be one of {', '.join(STATUSES)} or open")
        filt = TaskFilter(
            user_id=(await find_user(session, user)).id if user else None,
            kind=kind or None,
            status=status or None,
            channel_id=(await find_channel(session, channel)).id if channel else None,
            since=parse_time(since, param="since") if since else None,
        )
        return await repo.page(session, filt, page, per_page)

    tasks, total = run_db(work, changes_catalog=False)
    columns = [
        "id",
        "kind",
        "action",
        "model",
        "user",
        "channel",
        "status",
        "progress",
        "cost",
        "created",
        "error",
    ]
    rows = [
        (
            t.id,
            t.kind,
            t.action,
            t.model,
            t.user_id,
            t.channel_id,
            t.status,
            t.progress,
            t.cost if t.billed_at else t.reserved,
            iso_time(t.created_at),
            t.error_code,
        )
        for t in tasks
    ]
    table(f"tasks (page {page}, {len(tasks)} of {total})", columns, rows, as_json)


def _plain(task: TaskView, calls: list[Delivery]) -> dict[str, Any]:
    return {**asdict(task), "deliveries": [asdict(d) for d in calls]}


@app.command("show", help="One task: request, result, history and notifyHook calls.")
def show(task_id: str, as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> tuple[TaskView, list[Delivery]]:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id}")
        return task, await deliveries.for_task(session, task_id)

    task, calls = run_db(work, changes_catalog=False)
    if as_json:
        print(json.dumps(_plain(task, calls), default=str))
        return
    console.print_json(json.dumps(_plain(task, calls), default=str))


@app.command("cancel", help="Cancel an open task; a running gateway refunds it and tells the upstream.")
def cancel(task_id: str, as_json: JsonOption = False) -> None:
    s = settings()
    registry = build_task_registry(s)
    recorder = Recorder(
        None, registry, LocalMediaStore(s.resolved_media_dir(), s.resolved_public_url()), s, _ignore
    )

    async def work(session: AsyncSession, box: SecretBox) -> TaskView:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id}")
        if task.done:
            raise ConflictError(f"task {task_id} is {task.status} already")
        # Due now and held by nobody: the next worker to look closes its books.
        values = {
            **cancelled("cancelled (CLI)"),
            "lease_owner": None,
            "lease_until": None,
            "next_poll_at": now_ms(),
        }
        after, out, calls = recorder.prepare(task, values, "cancelled (CLI)")
        if not await recorder.write(session, task, after, out, calls, None):
            raise ConflictError(f"task {task_id} changed meanwhile; try again")
        return after

    task = run_db(work, changes_catalog=False)
    if as_json:
        print(json.dumps({"id": task.id, "status": task.status}))
    else:
        console.print(f"task {task.id} cancelled; a running gateway refunds it")


@app.command("retry-delivery", help="Send a failed notifyHook call again (by its delivery id).")
def retry_delivery(delivery_id: int, as_json: JsonOption = False) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Delivery:
        return await deliveries.retry(session, delivery_id, now_ms())

    delivery = run_db(work, changes_catalog=False)
    if as_json:
        print(json.dumps({"id": delivery.id, "status": delivery.status}))
    else:
        console.print(f"delivery {delivery.id} of task {delivery.task_id} will be sent again")


def _ignore(task: TaskView, calls: bool) -> None:
    """The CLI has no watchers nor workers to wake: the gateways find the change themselves."""
