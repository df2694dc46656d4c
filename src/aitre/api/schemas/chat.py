"""`POST /v1/chat/completions`: the request, the answer and the streamed chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from aitre.api.schemas.base import PASSED_ON, ModelName, Open


class StreamOptions(Open):
    include_usage: bool | None = Field(
        None, description="Send a last chunk with the usage of the whole request (empty `choices`)."
    )


class ChatMessage(Open):
    """One message of the conversation, passed to the upstream as it is."""

    role: str = Field(description="`system`, `developer`, `user`, `assistant` or `tool`.")
    content: str | list[dict[str, Any]] | None = Field(
        None, description="Text, or an array of content parts (`text`, `image_url`, `input_audio`, ...)."
    )


class ChatCompletionRequest(Open):
    """OpenAI's chat request. The gateway checks `model` and `messages`; every other field,
    documented here or not, goes to the upstream unchanged."""

    model: ModelName
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    stream: bool | None = Field(
        None, description="`true`: the answer is a `text/event-stream` of chunks, ending with `[DONE]`."
    )
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, description=f"Most tokens to generate (older name). {PASSED_ON}")
    max_completion_tokens: int | None = Field(None, description=f"Most tokens to generate. {PASSED_ON}")
    temperature: float | None = Field(None, description=PASSED_ON)
    top_p: float | None = Field(None, description=PASSED_ON)
    n: int | None = Field(None, description=f"How many choices to generate. {PASSED_ON}")
    stop: str | list[str] | None = Field(None, description=PASSED_ON)
    tools: list[dict[str, Any]] | None = Field(None, description=PASSED_ON)
    tool_choice: str | dict[str, Any] | None = Field(None, description=PASSED_ON)
    response_format: dict[str, Any] | None = Field(None, description=PASSED_ON)
    seed: int | None = Field(None, description=PASSED_ON)
    user: str | None = Field(None, description=PASSED_ON)


class CompletionUsage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ToolCall(Open):
    id: str
    type: str
    function: dict[str, Any]


class ChatAnswerMessage(Open):
    role: str
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(Open):
    index: int
    message: ChatAnswerMessage
    finish_reason: str | None = Field(description="`stop`, `length`, `tool_calls`, `content_filter`, ...")
    logprobs: dict[str, Any] | None = None


class ChatCompletion(Open):
    """A whole answer (`stream` not true). Image models answer the same way, with markdown links
    to the generated images in `content`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class ChatDelta(Open):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChunkChoice(Open):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(Open):
    """One `data:` event of a streamed answer. With `stream_options.include_usage` the last chunk
    has empty `choices` and the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
