"""Making the task behind a chat request: priced, checked against the balance and the user's open
tasks before anything is fetched or stored, then reserved and started by the engine.

SEAM: `create_video` builds the `video` kind's `TaskSpec` itself, to the contract shared with the
`/v1/videos` side (`request = {model, prompt, seconds, size, input_reference, remix_of, via}`);
once `aitre.video.create_video_task` lands, it takes over the spec and the price.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from aitre.billing.bank import insufficient
from aitre.chattask import pricing
from aitre.chattask.inputs import reference_doc
from aitre.chattask.models import REMOVER_KIND, VIDEO_KIND, VideoModel
from aitre.errors import ApiError
from aitre.tasks.protocol import TaskFilter, TaskSpec, TaskView

if TYPE_CHECKING:
    from aitre.accounts.auth import Caller
    from aitre.media.store import StoredMedia
    from aitre.state import AppState


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def not_priced(model: str) -> ApiError:
    return ApiError(
        400,
        f"The model `{model}` has no price here; ask the operator to set one.",
        param="model",
        code="model_not_priced",
    )


def video_cost(state: AppState, caller: Caller, video: VideoModel) -> int:
    usd = pricing.video_usd(state, video)
    if usd is None:
        raise not_priced(video.name)
    return pricing.units(state, usd, caller.group)


def removal_cost(state: AppState, caller: Caller, model: str) -> int:
    return pricing.units(state, pricing.removal_usd(state, model), caller.group)


async def precheck(state: AppState, caller: Caller, cost: int) -> None:
    """Refuse now what cannot be made, before fetching anything for it: a balance (or a key's
    quota) short of the price (402; the reservation at create is still the check that counts), or
    too many of the user's videos and removals running (429: each holds an upstream stream or a
    removal worker's time)."""
    bank = state.accountant.bank
    available = await bank.balance(caller.user_id)
    if available < cost:
        raise insufficient(f"Insufficient balance: this needs {cost} units, the account has {available}.")
    remaining = await bank.token_remaining(caller.token_id)
    if remaining is not None and remaining < cost:
        raise insufficient(
            f"This API key's quota is used up: this needs {cost} units, the key has {remaining}."
        )
    most = state.settings.chat_task_max_open
    if most <= 0:
        return
    running = 0
    for kind in (VIDEO_KIND, REMOVER_KIND):
        mine = TaskFilter(user_id=caller.user_id, kind=kind, status="open")
        running += (await state.tasks.list_tasks(mine, 1, 1))[1]
    if running >= most:
        raise ApiError(
            429,
            f"You already have {running} videos or removals running; wait for one to finish.",
            type="requests",
            code="too_many_open_tasks",
            headers={"retry-after": "10"},
        )


async def create_video(
    state: AppState, caller: Caller, video: VideoModel, prompt: str, reference: StoredMedia | None, cost: int
) -> TaskView:
    request: dict[str, Any] = {
        "model": video.model,
        "prompt": prompt,
        "seconds": video.seconds,
        "size": video.size,
        "input_reference": reference_doc(reference),
        "remix_of": None,
        "via": "chat",
    }
    return await _create(state, caller, VIDEO_KIND, "create", video.name, cost, request, reference)


async def create_removal(
    state: AppState, caller: Caller, model: str, url: str, text: str, cost: int
) -> TaskView:
    request = {"url": url, "prompt": text, "via": "chat"}
    return await _create(state, caller, REMOVER_KIND, "remove", model, cost, request)


async def _create(
    state: AppState,
    caller: Caller,
    kind: str,
    action: str,
    model: str,
    cost: int,
    request: dict[str, Any],
    upload: StoredMedia | None = None,
) -> TaskView:
    spec = TaskSpec(
        id=new_id(kind if kind == VIDEO_KIND else "remover"),
        kind=kind,
        action=action,
        model=model,
        user_id=caller.user_id,
        token_id=caller.token_id,
        group=caller.group,
        cost=cost,
        request=request,
    )
    try:
        return await state.tasks.create(spec)
    except BaseException:
        if upload is not None:
            await state.media.delete(upload.name)  # the task was not made: its upload goes too
        raise
