"""`POST /v1/audio/speech`, `/v1/audio/transcriptions` and `/v1/audio/translations`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from aitre.api.schemas.base import PASSED_ON, Absent, ModelName, NonBlank, Open

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]


class VoiceRef(Open):
    id: Annotated[str, Field(min_length=1)] = Field(description="A custom voice's id.")


class SpeechRequest(Open):
    """OpenAI's text-to-speech request. The gateway checks every field documented with bounds;
    others go to the upstream unchanged."""

    model: ModelName
    input: Annotated[NonBlank, Field(max_length=4096)] = Field(description="The text to speak.")
    voice: Annotated[str, Field(min_length=1)] | VoiceRef = Field(
        description='A voice name (`alloy`, `nova`, ...) or `{"id": ...}` for a custom voice.'
    )
    response_format: SpeechFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, description=PASSED_ON)
    stream_format: str | None = Field(
        None, description="`audio` (default) or `sse` (base64 audio in events, some models only)."
    )


class TranscriptionRequest(Open):
    """A multipart form with the audio file. Every field goes to the upstream, the file included;
    the file must be readable audio (flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm) and no
    larger than `AITRE_AUDIO_MAX_BYTES` (413)."""

    model: ModelName
    file: bytes = Field(description="The audio.")
    response_format: TranscriptFormat = "json"
    language: str | Absent = Field(None, description=f"ISO-639-1 code of the spoken language. {PASSED_ON}")
    prompt: str | Absent = Field(None, description=PASSED_ON)
    temperature: float | Absent = Field(None, description=PASSED_ON)
    timestamp_granularities: list[str] | Absent = Field(
        None,
        alias="timestamp_granularities[]",
        description=f"`word` and/or `segment`, with `verbose_json`. {PASSED_ON}",
    )


class TranslationRequest(Open):
    """A multipart form with the audio file, answered with English text; the same checks as
    transcriptions."""

    model: ModelName
    file: bytes = Field(description="The audio.")
    response_format: TranscriptFormat = "json"
    prompt: str | Absent = Field(None, description=PASSED_ON)
    temperature: float | Absent = Field(None, description=PASSED_ON)


class Transcription(Open):
    """`response_format` `json` (and `diarized_json`, with its segments)."""

    text: str
    usage: dict[str, Any] | None = Field(
        None, description="`{type: duration, seconds}` or `{type: tokens, input_tokens, ...}`."
    )


class VerboseTranscription(Transcription):
    """`response_format` `verbose_json`."""

    task: str | None = None
    language: str
    duration: float
    segments: list[dict[str, Any]] | None = None
    words: list[dict[str, Any]] | None = None
