"""The MidJourney routes in the OpenAPI document (see `openapi_public`): midjourney-proxy's API,
answered by aitre's task engine. What each case answers in words: docs/mj.md."""

from __future__ import annotations

from aitre.api.openapi_build import Answer, Body, Param, PublicRoute
from aitre.api.schemas.base import OpenAIErrorResponse
from aitre.api.schemas.mj import (
    ActionRequest,
    BlendRequest,
    CallbackAnswer,
    DescribeRequest,
    ImagineRequest,
    ListByConditionRequest,
    MjTask,
    MjTaskList,
    ModalRequest,
    ShortenRequest,
    SubmitResult,
    SwapFaceRequest,
)

MJ = "MidJourney"
JSON = "application/json"
KEY = " The key goes in `Authorization: Bearer sk-...` or in midjourney-proxy's `mj-api-secret: sk-...`."


def _error(description: str) -> Answer:
    return Answer(description, {JSON: OpenAIErrorResponse})


ERRORS: dict[int | str, Answer] = {
    401: _error("Missing, unknown or expired API key."),
    403: _error("`ip_not_allowed` for this key."),
    413: _error("The body is larger than the gateway accepts."),
    503: _error("`tasks_unavailable`: the task engine is not running."),
    "default": _error("Any other error, in the same shape (500 `internal_error`)."),
}
SUBMITTED = Answer(
    "midjourney-proxy's answer, HTTP 200 whatever the outcome: `code` 1 with the task id in `result`; "
    "21 (the task waits for `/mj/submit/modal`), 22 (queued), 23 (too many open tasks), 24 (banned "
    "prompt: nothing charged), 3 (no such task), 4 (invalid input, or `quota_not_enough`).",
    {JSON: SubmitResult},
)


def _submit(path: str, op: str, summary: str, body: Body, description: str = "") -> PublicRoute:
    return PublicRoute(("POST",), path, op, summary, MJ, {200: SUBMITTED, **ERRORS}, description + KEY, body)


_SWAP = Body({JSON: SwapFaceRequest}, "The face and the picture, as data URLs.")
ROUTES: tuple[PublicRoute, ...] = (
    _submit(
        "/mj/submit/imagine",
        "mjImagine",
        "Imagine: a grid of four pictures from a prompt",
        Body({JSON: ImagineRequest}, example={"botType": "MID_JOURNEY", "prompt": "Cat"}),
    ),
    _submit("/mj/submit/blend", "mjBlend", "Blend 2 to 5 images", Body({JSON: BlendRequest})),
    _submit(
        "/mj/submit/describe",
        "mjDescribe",
        "Four prompts that describe an image",
        Body({JSON: DescribeRequest}),
    ),
    _submit(
        "/mj/submit/shorten",
        "mjShorten",
        "Shorter versions of a prompt",
        Body({JSON: ShortenRequest}, example={"botType": "MID_JOURNEY", "prompt": "a very very red cat"}),
    ),
    _submit(
        "/mj/submit/action",
        "mjAction",
        "Press a button of a finished task (U1, V2, zoom, pan, ...)",
        Body({JSON: ActionRequest}),
        "Runs on the channel that ran the parent task. Buttons that need input (custom zoom, vary "
        "region, a describe's or shorten's pick) answer 21: send the input to `/mj/submit/modal`.",
    ),
    _submit(
        "/mj/submit/modal",
        "mjModal",
        "Give a task waiting in MODAL its prompt (and mask)",
        Body({JSON: ModalRequest}),
    ),
    _submit("/mj/insight-face/swap", "mjSwapFace", "Put a face on a picture", _SWAP),
    _submit(
        "/mj/submit/swap_face",
        "mjSwapFaceAlias",
        "Put a face on a picture (same as /mj/insight-face/swap)",
        _SWAP,
    ),
    PublicRoute(
        ("GET", "HEAD"),
        "/mj/task/{id}/fetch",
        "mjFetch",
        "A task of the caller's",
        MJ,
        {
            200: Answer("The task.", {JSON: MjTask}),
            404: _error("`task_not_found`: no such task of the caller's."),
            **ERRORS,
        },
        "Another user's task is not found." + KEY,
        params=(Param("id", "path", "The task id (the submit answer's `result`)."),),
    ),
    PublicRoute(
        ("GET", "HEAD"),
        "/mj/task/{id}/image-seed",
        "mjImageSeed",
        "The seed of a finished task's picture",
        MJ,
        {
            200: Answer(
                "`code` 1 and the seed in `result`; 3 no such task; 4 not finished.", {JSON: SubmitResult}
            ),
            **ERRORS,
        },
        KEY.strip(),
        params=(Param("id", "path", "The task id."),),
    ),
    PublicRoute(
        ("POST",),
        "/mj/task/list-by-condition",
        "mjListByCondition",
        "Several of the caller's tasks by id",
        MJ,
        {
            200: Answer(
                "The tasks found, in the order asked; unknown and others' ids left out.", {JSON: MjTaskList}
            ),
            400: _error("`ids` is not a list of at most 100 ids."),
            **ERRORS,
        },
        KEY.strip(),
        Body({JSON: ListByConditionRequest}),
    ),
    PublicRoute(
        ("GET",),
        "/mj/task/list",
        "mjList",
        "The caller's newest tasks",
        MJ,
        {200: Answer("Newest first.", {JSON: MjTaskList}), **ERRORS},
        KEY.strip(),
        params=(Param("limit", "query", "How many (1 to 100, default 20)."),),
    ),
)
ROUTES = (
    *ROUTES,
    PublicRoute(
        ("POST",),
        "/mj/_callback",
        "mjCallback",
        "For upstreams: a midjourney-proxy's notifyHook call about a task",
        MJ,
        {
            200: Answer("Taken: the task is polled at once.", {JSON: CallbackAnswer}),
            404: _error("No such task, or a wrong token (the same answer)."),
            413: ERRORS[413],
            "default": ERRORS["default"],
        },
        "aitre passes `/mj/_callback?task=<id>&token=<secret>` upstream as a task's notifyHook when "
        "its channel's `callback` is on; the token, not a key, authenticates the call.",
        Body({JSON: MjTask}, "The upstream's task object (not trusted: the task is polled)."),
        params=(
            Param("task", "query", "aitre's task id.", required=True),
            Param("token", "query", "The task's callback secret.", required=True),
        ),
        auth=False,
    ),
)
TAG = {"name": MJ, "description": "midjourney-proxy's API: MJ tasks, run by the gateway's task engine."}
