"""Creating a video task, the one way for every route that makes videos (`/v1/videos`, its remix,
and Sora by chat): the key may use the model, some channel serves it, it has a video price, the
owner has room for another open video; then its reference image is kept in the media store, its
cost reserved and the task started (`TaskService.create`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aitre.accounts.policy import check_model
from aitre.billing.accountant import not_priced
from aitre.errors import ApiError, model_not_found
from aitre.tasks.protocol import TaskFilter, TaskSpec, TaskView
from aitre.video.ids import new_video_id
from aitre.video.models import KIND
from aitre.video.params import VIA, VideoParams
from aitre.video.pricing import is_video_price, units

if TYPE_CHECKING:
    from aitre.accounts.auth import Caller
    from aitre.state import AppState


async def cost_of(state: AppState, caller: Caller, params: VideoParams) -> int:
    """The units reserved for the video (402 comes later, from the reservation)."""
    price = state.accountant.prices.price(params.model)
    if price is None:
        raise not_priced(params.model)
    if not is_video_price(price):
        raise ApiError(
            400,
            f"The model `{params.model}` has no video price here (per second or per video), so it "
            "cannot make videos; ask the operator to set one.",
            param="model",
            code="model_not_priced",
        )
    multiplier = state.accountant.prices.multiplier(caller.group)
    return units(price, int(params.seconds), params.size, multiplier, state.settings.quota_per_usd)


async def check_room(state: AppState, caller: Caller) -> None:
    """One user's open videos are bounded (`AITRE_VIDEO_MAX_OPEN_TASKS`)."""
    most = state.settings.video_max_open_tasks
    if most <= 0:
        return
    filters = TaskFilter(user_id=caller.user_id, kind=KIND, status="open")
    _, open_now = await state.tasks.list_tasks(filters, 1, 1)
    if open_now >= most:
        raise ApiError(
            429,
            f"You have {open_now} videos in progress, the most this gateway allows at once; "
            "wait for one to finish.",
            type="requests",
            code="too_many_open_videos",
            headers={"retry-after": "5"},
        )


async def create_video_task(
    state: AppState, caller: Caller, params: VideoParams, parent: TaskView | None = None
) -> TaskView:
    """Create the task for a checked request (`params`), for `caller` (the key and its user).
    `parent`: the video a remix remixes (the caller's own, completed): the remix runs on the
    channel that made it, since only that upstream knows the video. Raises `ApiError`."""
    if params.via not in VIA:
        raise ValueError(f"via must be one of {VIA}")
    check_model(caller, params.model)
    if not state.catalog.router.known(params.model):
        raise model_not_found(params.model)
    cost = await cost_of(state, caller, params)
    await check_room(state, caller)
    reference: dict[str, Any] | None = None
    if params.input_image is not None:
        stored = await state.media.save(params.input_image.data)
        reference = {"media": stored.name, "content_type": stored.content_type}
    request: dict[str, Any] = {
        "model": params.upstream_model or caller.model_mapping.get(params.model) or params.model,
        "prompt": params.prompt,
        "seconds": params.seconds,
        "size": params.size,
        "input_reference": reference,
        "remix_of": parent.id if parent is not None else params.remix_of,
        "via": params.via,
    }
    if params.extra:
        request["extra"] = params.extra
    spec = TaskSpec(
        id=new_video_id(),
        kind=KIND,
        action="remix" if request["remix_of"] else "create",
        model=params.model,
        user_id=caller.user_id,
        token_id=caller.token_id,
        group=caller.group,
        cost=cost,
        request=request,
        parent_id=request["remix_of"],
        channel_id=parent.channel_id if parent is not None else None,
    )
    try:
        return await state.tasks.create(spec)
    except BaseException:
        if reference is not None:
            await state.media.delete(reference["media"])  # no task: its upload goes too
        raise
