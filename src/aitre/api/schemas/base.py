"""What every public shape shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class Open(BaseModel):
    """A shape that may carry fields beyond the documented ones: the gateway passes unknown request
    fields to the upstream untouched and keeps the upstream's answer fields."""

    model_config = ConfigDict(extra="allow")


ModelName = Annotated[
    str, Field(min_length=1, description="The model to use; see `GET /v1/models` for the key's models.")
]
# A string the gateway checks for a non-blank value (`\S`: at least one non-space character).
NonBlank = Annotated[str, Field(min_length=1, pattern=r"\S")]

# For multipart form fields, which are absent or text, never null: `str | Absent = None`.
Absent = SkipJsonSchema[None]

PASSED_ON = "Passed to the upstream unchanged."


class OpenAIError(BaseModel):
    message: str
    type: str = Field(description="e.g. `invalid_request_error`, `rate_limit_error`, `upstream_error`.")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str | None = Field(description="A stable code to branch on, e.g. `model_not_found`.")


class OpenAIErrorResponse(BaseModel):
    """Every error of the public routes, in OpenAI's shape (the official SDKs parse it)."""

    error: OpenAIError
