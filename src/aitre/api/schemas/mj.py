"""The MidJourney API (`/mj/...`): midjourney-proxy's request, answer and task shapes, with its
(camelCase) field names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel

from aitre.api.schemas.base import Open

BotType = Literal["MID_JOURNEY", "NIJI_JOURNEY"]
DataUrl = Annotated[str, Field(description="An image as a data URL (`data:image/png;base64,...`).")]
Prompt = Annotated[str, Field(description="The prompt; MJ flags (`--ar 16:9`, `--relax`) allowed.")]
HOOK = "A URL (public address) that gets the task object, POSTed, on each change of the task."
STATE = "Any text (at most 4096 characters), kept and shown on the task."


class _Common(Open):
    notifyHook: str | None = Field(None, description=HOOK)
    state: str | None = Field(None, description=STATE)


class ImagineRequest(_Common):
    prompt: Prompt
    botType: BotType = "MID_JOURNEY"
    base64Array: list[DataUrl] | None = Field(
        None, description="Reference images (at most 10): data URLs, or public http(s) links."
    )


class BlendRequest(_Common):
    base64Array: list[DataUrl] = Field(description="2 to 5 images to blend.")
    dimensions: Literal["PORTRAIT", "SQUARE", "LANDSCAPE"] = Field("SQUARE", description="2:3, 1:1 or 3:2.")
    botType: BotType = "MID_JOURNEY"


class DescribeRequest(_Common):
    base64: DataUrl
    botType: BotType = "MID_JOURNEY"


class ShortenRequest(_Common):
    prompt: Prompt
    botType: BotType = "MID_JOURNEY"


class SwapFaceRequest(_Common):
    sourceBase64: DataUrl = Field(description="The face to use.")
    targetBase64: DataUrl = Field(description="The picture whose face is replaced.")


class ActionRequest(_Common):
    taskId: str = Field(description="The finished task whose button is pressed.")
    customId: str = Field(description="One of that task's `buttons[].customId`.")
    chooseSameChannel: bool | str | None = Field(
        None, description="Accepted; an action always runs where its parent ran."
    )


class ModalRequest(_Common):
    taskId: str = Field(description="The task waiting in `MODAL` (the action's code-21 answer).")
    prompt: str | None = Field(None, description="The prompt (custom zoom: with `--zoom 1..2`).")
    maskBase64: DataUrl | None = Field(None, description="Vary (Region): a PNG mask, white where to repaint.")


class ListByConditionRequest(Open):
    ids: list[str] = Field(max_length=100, description="Task ids (at most 100); others' ids are left out.")


class SubmitResult(Open):
    """midjourney-proxy's submit answer (HTTP 200 whatever the code)."""

    code: int = Field(
        description="1 submitted, 21 waiting for a modal, 22 queued, 23 queue full, 24 banned prompt, "
        "3 not found, 4 validation error (also `quota_not_enough`), 9 failure."
    )
    description: str
    result: str | None = Field(description="The task id (code 1, 21, 22); image-seed: the seed.")
    properties: dict[str, object] = Field(default_factory=dict)


class Button(Open):
    customId: str
    emoji: str
    label: str
    style: int
    type: int


class MjTask(Open):
    id: str
    action: str = Field(description="IMAGINE, UPSCALE, VARIATION, REROLL, ZOOM, PAN, INPAINT, ...")
    customId: str | None
    botType: str
    prompt: str | None
    promptEn: str
    description: str
    state: str | None
    submitTime: int
    startTime: int | None
    finishTime: int | None
    imageUrl: str | None = Field(description="The picture, in the gateway's media store.")
    status: Literal["NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "FAILURE", "SUCCESS", "CANCEL"]
    progress: str = Field(description='"0%" to "100%"; "" on failure.')
    failReason: str | None
    buttons: list[Button]
    maskBase64: str | None
    properties: dict[str, object]


class MjTaskList(RootModel[list[MjTask]]):
    """Tasks, in the order asked (list-by-condition) or newest first (list)."""


class CallbackAnswer(Open):
    ok: bool
    polled: bool = Field(description="Whether the task was still running (and is polled now).")
