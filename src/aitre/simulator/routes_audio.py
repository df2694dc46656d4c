"""`POST /v1/audio/speech` (audio streamed as it is encoded, or as server-sent events),
`POST /v1/audio/transcriptions` and `POST /v1/audio/translations`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aitre.simulator import audio, catalog
from aitre.simulator.audio import BadAudio, Probe
from aitre.simulator.common import (
    authorized,
    bad_request,
    begin,
    json_answer,
    open_json,
    sim,
    sse,
    stream_pieces,
    text_answer,
    unauthorized,
    unknown_model,
)
from aitre.simulator.forms import Form, read_form
from aitre.simulator.pieces import thread_pieces
from aitre.simulator.transcript import LANGUAGES, Transcript, words_for
from aitre.tokenizer import Tokenizer

MAX_INPUT_CHARS = 4096
MAX_AUDIO_UPLOAD = 25 * 1024 * 1024
# gpt-4o-mini-tts: about $0.015 a minute at $12 per million audio tokens.
SPEECH_TOKENS_PER_SECOND = 1250 / 60
# gpt-4o-transcribe: about $0.006 a minute at $6 per million audio tokens.
LISTEN_TOKENS_PER_SECOND = 1000 / 60
_TEXT_FORMATS = ("json", "text")
_ALL_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


@dataclass(slots=True)
class Speech:
    text: str
    voice: str
    fmt: str
    speed: float
    sse: bool


def _speech_params(body: dict[str, Any], model: str) -> Speech | Response:
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        return bad_request("`input` is required and must be a non-empty string.", "input")
    if len(text) > MAX_INPUT_CHARS:
        return bad_request(f"`input` is longer than {MAX_INPUT_CHARS} characters.", "input")
    voice = body.get("voice")
    if isinstance(voice, dict):
        voice = voice.get("id")
    if not isinstance(voice, str) or not voice.strip():
        return bad_request(
            "`voice` is required, e.g. alloy, ash, coral, echo, nova, sage or shimmer.", "voice"
        )
    fmt = body.get("response_format") or "mp3"
    if fmt not in audio.FORMATS:
        return bad_request(f"`response_format` must be one of {', '.join(audio.FORMATS)}.", "response_format")
    speed = body.get("speed", 1.0)
    speed = 1.0 if speed is None else speed
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return bad_request("`speed` must be a number between 0.25 and 4.0.", "speed")
    stream_format = body.get("stream_format") or "audio"
    if stream_format not in ("audio", "sse"):
        return bad_request("`stream_format` must be `audio` or `sse`.", "stream_format")
    if stream_format == "sse" and model not in catalog.SSE_SPEECH_MODELS:
        return bad_request(f"stream_format `sse` is not supported for {model}.", "stream_format")
    return Speech(text, voice, fmt, float(speed), stream_format == "sse")


async def _audio_events(
    request: Request, params: Speech, pieces: AsyncGenerator[bytes, None], with_usage: bool
) -> AsyncIterator[tuple[bytes, bool]]:
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            yield sse({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}), True
    if not with_usage:
        yield sse({"type": "speech.audio.done"}), False
        return
    text_tokens = await asyncio.to_thread(sim(request).tokenizer.count, params.text, "gpt-4o-mini")
    audio_tokens = math.ceil(audio.duration_for(params.text, params.speed) * SPEECH_TOKENS_PER_SECOND)
    usage = {
        "input_tokens": text_tokens,
        "output_tokens": audio_tokens,
        "total_tokens": text_tokens + audio_tokens,
    }
    yield sse({"type": "speech.audio.done", "usage": usage}), False


async def _audio_pieces(pieces: AsyncGenerator[bytes, None]) -> AsyncIterator[tuple[bytes, bool]]:
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            yield piece, True


async def speech(request: Request) -> Response:
    opened = await open_json(request, catalog.SPEECH_MODELS)
    if isinstance(opened, Response):
        return opened
    body, model = opened
    params = _speech_params(body, model)
    if isinstance(params, Response):
        return params
    started = await begin(request, model, True)
    if isinstance(started, Response):
        return started
    ev, fault = started

    def work(write: audio.Write) -> None:
        audio.encode(
            audio.synthesize(params.text, params.voice, params.speed), params.fmt, params.text, write
        )

    pieces = thread_pieces(work)
    if params.sse:
        events = stream_pieces(request, _audio_events(request, params, pieces, not fault.no_usage), fault, ev)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    media_type = audio.FORMATS[params.fmt][2]
    return StreamingResponse(stream_pieces(request, _audio_pieces(pieces), fault, ev), media_type=media_type)


@dataclass(slots=True)
class Listen:
    model: str
    upload: bytes
    fmt: str
    granularities: list[str]
    temperature: float
    language: str


def _listen_params(form: Form, models: tuple[str, ...]) -> Listen | Response:
    model = form.fields.get("model")
    if not model:
        return bad_request("`model` is required.", "model")
    if model not in models:
        return unknown_model(model)
    uploads = form.uploads("file")
    if not uploads:
        return bad_request("file is required: upload the audio as the `file` field.", "file")
    fmt = form.fields.get("response_format") or "json"
    allowed = _ALL_FORMATS if model == "whisper-1" else _TEXT_FORMATS
    if fmt not in allowed:
        return bad_request(
            f"response_format `{fmt}` is not supported for {model}; use one of {', '.join(allowed)}.",
            "response_format",
        )
    granularities = form.lists.get("timestamp_granularities[]", []) + form.lists.get(
        "timestamp_granularities", []
    )
    if any(g not in ("word", "segment") for g in granularities):
        return bad_request(
            "`timestamp_granularities` may hold `word` and `segment`.", "timestamp_granularities"
        )
    if granularities and fmt != "verbose_json":
        return bad_request(
            "`timestamp_granularities` needs response_format `verbose_json`.", "timestamp_granularities"
        )
    try:
        temperature = float(form.fields.get("temperature") or 0)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        return bad_request("`temperature` must be a number between 0 and 1.", "temperature")
    language = LANGUAGES.get(form.fields.get("language", "en"), form.fields.get("language") or "english")
    return Listen(model, uploads[0].data, fmt, granularities, temperature, language)


def _listen_usage(tokenizer: Tokenizer, model: str, duration: float, text: str) -> dict[str, Any]:
    if model == "whisper-1":
        return {"type": "duration", "seconds": math.ceil(duration)}
    audio_tokens = math.ceil(duration * LISTEN_TOKENS_PER_SECOND)
    output = tokenizer.count(text, model)
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
        "output_tokens": output,
        "total_tokens": audio_tokens + output,
    }


def _transcript_body(
    tokenizer: Tokenizer, params: Listen, probe: Probe, task: str, with_usage: bool
) -> dict[str, Any] | str:
    """The answer in the asked-for format: a JSON object, or text (plain, SRT, WebVTT)."""
    text = probe.text or words_for(params.upload, probe.duration)
    language = "english" if task == "translate" else params.language
    transcript = Transcript(task, language, probe.duration, text)
    usage = _listen_usage(tokenizer, params.model, probe.duration, text) if with_usage else None
    if params.fmt == "json":
        return {"text": text, "usage": usage} if usage is not None else {"text": text}
    if params.fmt == "verbose_json":
        return transcript.verbose(params.granularities, params.temperature, tokenizer, usage)
    if params.fmt == "text":
        return text + "\n"
    return transcript.subtitles(params.fmt)


async def _listen(request: Request, task: str, models: tuple[str, ...]) -> Response:
    if not authorized(request):
        return unauthorized()
    form = await read_form(request, MAX_AUDIO_UPLOAD)
    if isinstance(form, Response):
        return form
    params = _listen_params(form, models)
    if isinstance(params, Response):
        return params
    try:
        probe = await asyncio.to_thread(audio.probe, params.upload)
    except BadAudio as exc:
        return bad_request(f"Audio file might be corrupted or unsupported: {exc}.", "file", "invalid_value")
    started = await begin(request, params.model, False)
    if isinstance(started, Response):
        return started
    ev, fault = started
    tokenizer = sim(request).tokenizer
    body = await asyncio.to_thread(_transcript_body, tokenizer, params, probe, task, not fault.no_usage)
    return text_answer(body, fault, ev) if isinstance(body, str) else json_answer(body, fault, ev)


async def transcriptions(request: Request) -> Response:
    return await _listen(request, "transcribe", catalog.TRANSCRIPTION_MODELS)


async def translations(request: Request) -> Response:
    return await _listen(request, "translate", catalog.TRANSLATION_MODELS)
