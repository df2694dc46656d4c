"""`GET /v1/models`, `/v1/models/{model}`, `/healthz` and `/readyz`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from aitre.api.schemas.base import Open


class Model(Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Open):
    """The models the caller's key may use."""

    object: Literal["list"]
    data: list[Model]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    problems: list[str] | None = Field(
        None, description="What is wrong, when unavailable (the database, no enabled channel)."
    )
