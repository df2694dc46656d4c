"""POST /v1/audio/speech, /v1/audio/transcriptions, /v1/audio/translations."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from aitre.api.common import (
    app_state,
    authenticate,
    form_files,
    form_model,
    form_value,
    new_job,
    read_form,
    read_json_object,
    require_model,
    require_str,
)
from aitre.errors import ApiError, bad_request
from aitre.media.probe import UnreadableMedia, audio_duration
from aitre.relay.job import RelayJob
from aitre.relay.outcome import finish
from aitre.relay.pipeline import ensure_routable, relay
from aitre.relay.usage import Usage
from aitre.state import AppState

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
INPUT_FORMATS = "flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm"
_ANY_AUDIO = Usage(seconds=0.001)  # the least a transcription can cost: a price per second rounds up


async def speech(request: Request) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    body = await read_json_object(request, state.settings.max_body_bytes)
    model = require_model(body)
    text = require_str(body, "input", max_len=4096)
    voice = body.get("voice")
    if not (isinstance(voice, str) and voice) and not (isinstance(voice, dict) and voice.get("id")):
        raise bad_request("`voice` is required.", param="voice")
    fmt = body.get("response_format", "mp3")
    if fmt not in SPEECH_FORMATS:
        raise bad_request(
            f"`response_format` must be one of {', '.join(SPEECH_FORMATS)}.", param="response_format"
        )
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or isinstance(speed, bool) or not 0.25 <= speed <= 4.0:
        raise bad_request("`speed` must be a number between 0.25 and 4.0.", param="speed")
    job = new_job(
        request,
        caller,
        "audio.speech",
        "/audio/speech",
        body,
        model,
        binary_response=True,
        known_units=Usage(characters=len(text)),
    )
    return await relay(state, job)


async def _transcribe(request: Request, endpoint: str, path: str) -> Response | ASGIApp:
    state = app_state(request)
    caller = await authenticate(request, state)
    limit = state.settings.audio_max_bytes
    fields = await read_form(request, limit + 64 * 1024)
    model = form_model(fields)
    files = form_files(fields, "file")
    if not files or not files[0].data:
        raise bad_request("`file` is required: upload the audio as a multipart file field.", param="file")
    audio = files[0]
    if len(audio.data) > limit:
        raise ApiError(
            413, f"The audio file is larger than {limit} bytes.", param="file", code="file_too_large"
        )
    fmt = form_value(fields, "response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        raise bad_request(
            f"`response_format` must be one of {', '.join(TRANSCRIPT_FORMATS)}.", param="response_format"
        )
    body = {"model": model, "response_format": fmt}
    job = new_job(request, caller, endpoint, path, body, model, form=fields)
    # Decoding takes a worker thread for up to a second; a request that will be refused anyway
    # (the key may not, the balance cannot pay for any audio at all) is refused first.
    await precheck(state, job)
    try:
        seconds = await asyncio.to_thread(audio_duration, audio.data)
    except UnreadableMedia as exc:
        raise ApiError(
            400,
            f"The file could not be read as audio ({exc}). Supported formats: {INPUT_FORMATS}.",
            param="file",
            code="invalid_file_format",
        ) from None
    job.known_units = Usage(seconds=seconds)
    return await relay(state, job)


async def precheck(state: AppState, job: RelayJob) -> None:
    """The checks of admission that need no measurement of the input; a refusal is logged."""
    ensure_routable(state, job)
    try:
        await state.accountant.precheck(job, _ANY_AUDIO)
    except ApiError as error:
        finish(state, job, None, error.status, error.message)
        raise


async def transcriptions(request: Request) -> Response | ASGIApp:
    return await _transcribe(request, "audio.transcriptions", "/audio/transcriptions")


async def translations(request: Request) -> Response | ASGIApp:
    return await _transcribe(request, "audio.translations", "/audio/translations")
