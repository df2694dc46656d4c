"""`POST /v1/completions` (legacy text completions) and `POST /v1/embeddings`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from aitre.api.schemas.base import PASSED_ON, ModelName, Open
from aitre.api.schemas.chat import CompletionUsage, StreamOptions


class CompletionRequest(Open):
    """OpenAI's legacy completion request. The gateway checks `model` and `prompt`; every other
    field goes to the upstream unchanged."""

    model: ModelName
    prompt: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1)]
    ) = Field(description="A string, or a non-empty array of strings, of tokens or of token arrays.")
    stream: bool | None = Field(
        None, description="`true`: the answer is a `text/event-stream` of completion chunks, then `[DONE]`."
    )
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, description=PASSED_ON)
    temperature: float | None = Field(None, description=PASSED_ON)
    top_p: float | None = Field(None, description=PASSED_ON)
    n: int | None = Field(None, description=PASSED_ON)
    stop: str | list[str] | None = Field(None, description=PASSED_ON)
    echo: bool | None = Field(None, description=PASSED_ON)
    suffix: str | None = Field(None, description=PASSED_ON)
    user: str | None = Field(None, description=PASSED_ON)


class CompletionChoice(Open):
    text: str
    index: int
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class Completion(Open):
    """A whole answer, and also each `data:` event of a streamed one (then `choices` holds the new
    text; with `stream_options.include_usage` the last event has empty `choices` and the usage)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class EmbeddingRequest(Open):
    """OpenAI's embedding request. The gateway checks every field documented here."""

    model: ModelName
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1)]
    ) = Field(
        description="A non-empty string, or a non-empty array of non-empty strings, of tokens or of "
        "non-empty token arrays."
    )
    encoding_format: Literal["float", "base64"] | None = Field(
        None, description="`float` (default): arrays of numbers; `base64`: little-endian float32 bytes."
    )
    dimensions: int | None = Field(
        None, ge=1, description="Shorten the vectors to this many dimensions (text-embedding-3 models)."
    )
    user: str | None = Field(None, description=PASSED_ON)


class Embedding(Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Numbers, or base64 with `encoding_format: base64`.")


class EmbeddingUsage(Open):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None
