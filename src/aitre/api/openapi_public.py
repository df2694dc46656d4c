"""The public routes in the OpenAPI document: one `PublicRoute` per path the fast path serves
(`app.py:_fast_routes`, `_prefix_routes`). A new public route gets its entry here (and its
pydantic shapes in `api/schemas/`); `tests/test_openapi.py` fails for a route served but not
described, and sends every example below to a real gateway."""

from __future__ import annotations

from typing import Any

from aitre.api.openapi_build import (
    Answer,
    AnyOf,
    Body,
    Content,
    Events,
    Param,
    PublicRoute,
    add_public_routes,
)
from aitre.api.openapi_mj import ROUTES as MJ_ROUTES
from aitre.api.openapi_mj import TAG as MJ_TAG
from aitre.api.openapi_videos import ROUTES as VIDEO_ROUTES
from aitre.api.openapi_videos import TAG as VIDEO_TAG
from aitre.api.schemas.audio import (
    SpeechRequest,
    Transcription,
    TranscriptionRequest,
    TranslationRequest,
    VerboseTranscription,
)
from aitre.api.schemas.base import OpenAIErrorResponse
from aitre.api.schemas.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from aitre.api.schemas.completions import Completion, CompletionRequest, EmbeddingList, EmbeddingRequest
from aitre.api.schemas.images import ImageEditRequest, ImageGenerationRequest, ImagesResponse
from aitre.api.schemas.service import Health, Model, ModelList, Readiness

OPENAI = "OpenAI-compatible"
JSON = "application/json"
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
TEXT: dict[str, Any] = {"type": "string"}
MULTIPART = "multipart/form-data"
RETRY_AFTER = {"Retry-After": "Seconds to wait before trying again."}
MEDIA: dict[str, Content] = dict.fromkeys(
    ("image/*", "video/*", "audio/*", "application/octet-stream"), BINARY
)
MEDIA_HEADERS = {
    "Accept-Ranges": "`bytes`.",
    "Cache-Control": "The file never changes: cache it for a year.",
    "ETag": "The file's version (`If-None-Match` → 304).",
    "Last-Modified": "When the file was written.",
}


def _error(description: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(description, {JSON: OpenAIErrorResponse}, headers or {})


# What can go wrong on every relay route, each in OpenAI's error shape.
RELAY_ERRORS: dict[int | str, Answer] = {
    400: _error(
        "Invalid request: a missing or malformed field (`param` names it), a body that is not "
        "what the route takes, or `model_not_priced`."
    ),
    401: _error("Missing, unknown or expired API key."),
    402: _error("`insufficient_quota`: the key's or its owner's balance cannot cover the request."),
    403: _error("`model_not_allowed` or `ip_not_allowed` for this key."),
    404: _error("`model_not_found`: no channel serves the model."),
    413: _error("The body, or an uploaded file, is larger than the gateway accepts."),
    429: _error("Rate limited: the key's RPM/TPM limit, or the upstream's.", RETRY_AFTER),
    502: _error("The upstream failed, timed out or answered with something unusable."),
    503: _error(
        "`no_available_channel`, or `channels_busy` (every channel at its concurrency limit).", RETRY_AFTER
    ),
    "default": _error("Any other error, in the same shape: 500 `internal_error`, or an upstream's own 4xx."),
}
TRANSCRIPT = Answer(
    "`json`, `diarized_json`: `{text, ...}`; `verbose_json`: with language, duration and segments; "
    "`text`, `srt`, `vtt`: plain text.",
    {JSON: AnyOf((VerboseTranscription, Transcription)), "text/plain": TEXT},
)
STREAM_NOTE = (
    ' A stream that fails after it started ends with an error event (`data: {"error": ...}`) and '
    "`data: [DONE]`."
)


def _relay(
    path: str,
    operation_id: str,
    summary: str,
    body: Body,
    ok: Answer,
    description: str = "",
) -> PublicRoute:
    return PublicRoute(
        ("POST",), path, operation_id, summary, OPENAI, {200: ok, **RELAY_ERRORS}, description, body
    )


ROUTES: tuple[PublicRoute, ...] = (
    _relay(
        "/v1/chat/completions",
        "createChatCompletion",
        "Chat, streamed or not",
        Body(
            {JSON: ChatCompletionRequest},
            example={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say this is a test"}]},
        ),
        Answer(
            "The answer: one JSON object, or with `stream: true` a stream of chunks." + STREAM_NOTE,
            {
                JSON: ChatCompletion,
                "text/event-stream": Events(ChatCompletionChunk, "one `chat.completion.chunk` each."),
            },
        ),
        "Image models (`gpt-4o-image`, `gemini-2.5-flash-image-preview`, ...) answer in the same "
        "shapes, with markdown links to the generated images.",
    ),
    _relay(
        "/v1/completions",
        "createCompletion",
        "Legacy text completions, streamed or not",
        Body(
            {JSON: CompletionRequest},
            example={"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7},
        ),
        Answer(
            "One `text_completion` object, or with `stream: true` a stream of them." + STREAM_NOTE,
            {JSON: Completion, "text/event-stream": Events(Completion, "one `text_completion` each.")},
        ),
    ),
    _relay(
        "/v1/embeddings",
        "createEmbedding",
        "Embeddings of texts or tokens",
        Body(
            {JSON: EmbeddingRequest},
            example={"model": "text-embedding-3-small", "input": "The food was delicious"},
        ),
        Answer("One embedding per input, in input order.", {JSON: EmbeddingList}),
    ),
    _relay(
        "/v1/images/generations",
        "createImage",
        "Generate images",
        Body(
            {JSON: ImageGenerationRequest},
            example={"model": "dall-e-3", "prompt": "A cute baby sea otter", "size": "1024x1024"},
        ),
        Answer(
            "The images, as links (re-hosted in the gateway's media store) or base64.", {JSON: ImagesResponse}
        ),
    ),
    _relay(
        "/v1/images/edits",
        "createImageEdit",
        "Edit images (multipart upload)",
        Body({MULTIPART: ImageEditRequest}),
        Answer("The edited images.", {JSON: ImagesResponse}),
    ),
    _relay(
        "/v1/audio/speech",
        "createSpeech",
        "Text to speech, streamed as it is made",
        Body({JSON: SpeechRequest}, example={"model": "tts-1", "input": "Hello world", "voice": "alloy"}),
        Answer(
            "The audio in the asked-for format, sent as it is encoded; with `stream_format: sse`, "
            "server-sent events carrying base64 audio.",
            {
                **dict.fromkeys(
                    ("audio/mpeg", "audio/opus", "audio/aac", "audio/flac", "audio/wav", "audio/pcm"), BINARY
                ),
                "text/event-stream": TEXT,
            },
        ),
    ),
    _relay(
        "/v1/audio/transcriptions",
        "createTranscription",
        "Speech to text (multipart upload)",
        Body({MULTIPART: TranscriptionRequest}),
        TRANSCRIPT,
    ),
    _relay(
        "/v1/audio/translations",
        "createTranslation",
        "Speech to English text (multipart upload)",
        Body({MULTIPART: TranslationRequest}),
        TRANSCRIPT,
    ),
    PublicRoute(
        ("GET",),
        "/v1/models",
        "listModels",
        "The models the key may use",
        OPENAI,
        {200: Answer("OpenAI's list format.", {JSON: ModelList}), 401: RELAY_ERRORS[401]},
    ),
    PublicRoute(
        ("GET", "HEAD"),
        "/v1/models/{model}",
        "retrieveModel",
        "One model the key may use",
        OPENAI,
        {
            200: Answer("The model.", {JSON: Model}),
            401: RELAY_ERRORS[401],
            404: _error("`model_not_found`: no such model, or not one this key may use."),
        },
        params=(Param("model", "path", "The model's id (it may contain `/`)."),),
    ),
    PublicRoute(
        ("GET", "HEAD"),
        "/media/{name}",
        "getMedia",
        "A file the gateway generated or copied",
        "Media",
        {
            200: Answer("The whole file.", MEDIA, MEDIA_HEADERS),
            304: Answer("`If-None-Match` matched: the copy the client has is current.", {}, MEDIA_HEADERS),
            206: Answer(
                "The asked-for byte range (several ranges: `multipart/byteranges`).",
                {**MEDIA, "multipart/byteranges": BINARY},
                {**MEDIA_HEADERS, "Content-Range": "The range sent, e.g. `bytes 0-9/1234`."},
            ),
            400: Answer("A malformed `Range` header.", {"text/plain": TEXT}, request_id=False),
            404: _error("No such media file."),
            416: Answer(
                "The range lies outside the file.",
                {},
                {"Content-Range": "`bytes */<size>`."},
                request_id=False,
            ),
        },
        "Links in image answers point here. Public (no key): the names are unguessable.",
        params=(
            Param("name", "path", "The file's name from the link."),
            Param("Range", "header", "`bytes=<start>-<end>`, several ranges comma-separated."),
            Param("If-None-Match", "header", "An ETag from an earlier answer."),
        ),
        auth=False,
    ),
    PublicRoute(
        ("GET",),
        "/healthz",
        "healthz",
        "Liveness: the process answers",
        "Health",
        {200: Answer("Alive.", {JSON: Health})},
        auth=False,
    ),
    PublicRoute(
        ("GET",),
        "/readyz",
        "readyz",
        "Readiness: the database answers and a channel is usable",
        "Health",
        {200: Answer("Ready.", {JSON: Readiness}), 503: Answer("Not ready, and why.", {JSON: Readiness})},
        auth=False,
    ),
    PublicRoute(
        ("GET",),
        "/metrics",
        "metrics",
        "Prometheus metrics of every worker",
        "Health",
        {
            200: Answer("Prometheus's text exposition format.", {"text/plain": TEXT}),
            401: _error("`AITRE_METRICS_TOKEN` is set and the request's bearer token is not it."),
            403: _error("`AITRE_METRICS_ALLOW_IPS` is set and the client's address is not in it."),
            404: _error(
                "Metrics are off: neither `AITRE_METRICS_TOKEN` nor `AITRE_METRICS_ALLOW_IPS` is set."
            ),
        },
        "Off (404) unless `AITRE_METRICS_TOKEN` or `AITRE_METRICS_ALLOW_IPS` is set. The metrics "
        "are described in docs/metrics.md.",
        params=(Param("Authorization", "header", "`Bearer <AITRE_METRICS_TOKEN>`, when it is set."),),
        auth=False,
    ),
    *VIDEO_ROUTES,
    *MJ_ROUTES,
)
TAGS = [
    {"name": OPENAI, "description": "The relay: OpenAI's API, with one aitre key for every upstream."},
    VIDEO_TAG,
    MJ_TAG,
    {"name": "Media", "description": "Images and other files the gateway keeps."},
    {"name": "Health", "description": "For load balancers and orchestrators."},
]


def add_to(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (FastAPI's, for the admin and user APIs) with the public routes added."""
    add_public_routes(doc, ROUTES)
    doc["tags"] = [*TAGS, *doc.get("tags", [])]
    return doc
