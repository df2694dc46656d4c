"""What a channel can be asked to do, named once.

Endpoints and facades ask the router for a channel that serves a capability for a model; each
protocol says which capabilities it serves (`base.Adapter`). Two kinds:

- forwarded: the client's OpenAI-format request goes upstream with only the model mapped, and
  the upstream's answer comes back byte for byte (`relay.passthrough`);
- images: a protocol's piece makes images from an OpenAI images-API request (`images.ImageRequest`)
  and returns them (`images.Images`), whatever the upstream speaks; the images API and
  image-by-chat each shape them their own way.
"""

from __future__ import annotations

from typing import Final, Literal

Capability = Literal[
    "chat",
    "completions",
    "embeddings",
    "audio.speech",
    "audio.transcribe",
    "audio.translate",
    "images.generate",
    "images.edit",
]

CHAT: Final = "chat"
COMPLETIONS: Final = "completions"
EMBEDDINGS: Final = "embeddings"
AUDIO_SPEECH: Final = "audio.speech"
AUDIO_TRANSCRIBE: Final = "audio.transcribe"
AUDIO_TRANSLATE: Final = "audio.translate"
IMAGES_GENERATE: Final = "images.generate"
IMAGES_EDIT: Final = "images.edit"

FORWARDED: frozenset[Capability] = frozenset(
    {CHAT, COMPLETIONS, EMBEDDINGS, AUDIO_SPEECH, AUDIO_TRANSCRIBE, AUDIO_TRANSLATE}
)
IMAGES: frozenset[Capability] = frozenset({IMAGES_GENERATE, IMAGES_EDIT})

# The capability behind each endpoint (its usage-log name).
OF_ENDPOINT: dict[str, Capability] = {
    "chat.completions": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "audio.speech": AUDIO_SPEECH,
    "audio.transcriptions": AUDIO_TRANSCRIBE,
    "audio.translations": AUDIO_TRANSLATE,
    "images.generations": IMAGES_GENERATE,
    "images.edits": IMAGES_EDIT,
}

# For error messages: what a capability is, in words.
DESCRIBED: dict[Capability, str] = {
    CHAT: "chat completions",
    COMPLETIONS: "completions",
    EMBEDDINGS: "embeddings",
    AUDIO_SPEECH: "speech",
    AUDIO_TRANSCRIBE: "transcriptions",
    AUDIO_TRANSLATE: "translations",
    IMAGES_GENERATE: "image generation",
    IMAGES_EDIT: "image edits",
}
