"""The models the simulator answers for, by capability."""

from __future__ import annotations

from aitre.adapters import bfl_models
from aitre.video import models as video_models

CHAT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-5-mini",
    "gpt-3.5-turbo",
    "o4-mini",
)
# Chat models whose answer is an image (markdown + OpenRouter-style `message.images`).
CHAT_IMAGE_MODELS = ("gemini-2.5-flash-image-preview", "gemini-2.5-flash-image", "gpt-4o-image", "gpt-4o-all")
# OpenAI's video models (`/v1/videos`): the gateway runs them as video tasks on this simulator.
VIDEO_MODELS = video_models.SORA_MODELS
# Relays' Sora by chat: a video of the prompt (orientation and length in the name; portrait and
# 10 s by default), and watermark removal. Left out of `all_models()`: the gateway's simulator
# channel runs videos through `/v1/videos`, which makes none of their lengths (10 s, 15 s); a
# `chat-video` channel pointed at the simulator serves them (docs/video-chat.md).
VIDEO_REMOVER_MODELS = ("sora_remover",)
CHAT_VIDEO_MODELS = (
    "sora_video2",
    "sora_video2-portrait",
    "sora_video2-landscape",
    "sora_video2-portrait-15s",
    "sora_video2-landscape-15s",
    *VIDEO_REMOVER_MODELS,
)
COMPLETION_MODELS = ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002")
# Native dimensions of each embedding model.
EMBEDDING_MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# Models that take `dimensions` (OpenAI: only the text-embedding-3 family).
SHORTENABLE_EMBEDDINGS = ("text-embedding-3-small", "text-embedding-3-large")
# GPT image models, and the image-by-chat models that also answer the images API like them.
GPT_IMAGE_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-4o-image", "gpt-4o-all")
IMAGE_MODELS = (*GPT_IMAGE_MODELS, "dall-e-3", "dall-e-2")
IMAGE_EDIT_MODELS = (*GPT_IMAGE_MODELS, "dall-e-2")
SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tts")
# Speech models that can stream server-sent events (`stream_format: "sse"`).
SSE_SPEECH_MODELS = ("gpt-4o-mini-tts",)
TRANSCRIPTION_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
TRANSLATION_MODELS = ("whisper-1",)
# Black Forest Labs models, served over BFL's own API (`POST /v1/<model>`), not OpenAI's: the
# models BFL has, without the gateway's alias names.
BFL_MODELS = tuple(m for m in bfl_models.BFL_MODELS if m not in bfl_models.DEFAULT_FLUX_MAPPING)


def all_models() -> list[str]:
    """Every model served through OpenAI-format routes (the gateway's simulator channel routes
    exactly these), each once."""
    groups = (
        CHAT_MODELS,
        CHAT_IMAGE_MODELS,
        COMPLETION_MODELS,
        tuple(EMBEDDING_MODELS),
        IMAGE_MODELS,
        SPEECH_MODELS,
        TRANSCRIPTION_MODELS,
        VIDEO_MODELS,
    )
    return list(dict.fromkeys(m for group in groups for m in group))
