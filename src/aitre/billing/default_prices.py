"""Prices shipped with aitre for the models the AITRE API names (USD, list prices of the
providers as of 2025). A row in the `prices` table overrides the entry for its model; the model
`*`, when an operator sets it, prices every model that has no entry of its own."""

from __future__ import annotations

from typing import Any


def _tokens(inp: str, out: str, cached: str = "") -> dict[str, Any]:
    return {"input_per_1m": inp, "output_per_1m": out, "cached_input_per_1m": cached}


_GPT_IMAGE_1 = {
    "1024x1024/low": "0.011", "1024x1024/medium": "0.042", "1024x1024/high": "0.167",
    "1024x1536/low": "0.016", "1024x1536/medium": "0.063", "1024x1536/high": "0.25",
    "1536x1024/low": "0.016", "1536x1024/medium": "0.063", "1536x1024/high": "0.25",
}  # fmt: skip


def _mj(fast: str, relax: str, turbo: str) -> dict[str, Any]:
    return {"per_call": fast, "image_prices": {"fast": fast, "relax": relax, "turbo": turbo}}


_MJ_PRICES = {
    **{m: _mj("0.1", "0.05", "0.2") for m in (
        "mj_imagine", "mj_variation", "mj_high_variation", "mj_low_variation", "mj_reroll", "mj_blend",
        "mj_zoom", "mj_custom_zoom", "mj_pan", "mj_inpaint", "mj_shorten",
    )},
    **{m: _mj("0.05", "0.025", "0.1") for m in ("mj_upscale", "mj_describe", "swap_face")},
}  # fmt: skip

# Videos, per second of video (OpenAI's list prices); `image_prices` holds the price per second at
# sizes priced otherwise (see `video/pricing.py`). Sora by chat is priced like sora-2.
_SORA: dict[str, Any] = {"per_second": "0.10"}
_SORA_PRO: dict[str, Any] = {"per_second": "0.30", "image_prices": {"1024x1792": "0.50", "1792x1024": "0.50"}}
_VIDEO_PRICES: dict[str, dict[str, Any]] = {
    **dict.fromkeys(("sora-2", "sora-2-2025-10-06", "sora-2-2025-12-08"), _SORA),
    **dict.fromkeys(("sora-2-pro", "sora-2-pro-2025-10-06"), _SORA_PRO),
    **dict.fromkeys(
        (
            "sora_video2",
            "sora_video2-portrait",
            "sora_video2-landscape",
            "sora_video2-portrait-15s",
            "sora_video2-landscape-15s",
        ),
        _SORA,
    ),
}

DEFAULT_PRICES: dict[str, dict[str, Any]] = {
    # chat
    "gpt-4o-mini": _tokens("0.15", "0.60", "0.075"),
    "gpt-4o": _tokens("2.50", "10", "1.25"),
    "gpt-4.1-mini": _tokens("0.40", "1.60", "0.10"),
    "gpt-4.1": _tokens("2", "8", "0.50"),
    "gpt-5-mini": _tokens("0.25", "2", "0.025"),
    "gpt-3.5-turbo": _tokens("0.50", "1.50"),
    "o4-mini": _tokens("1.10", "4.40", "0.275"),
    # legacy completions
    "gpt-3.5-turbo-instruct": _tokens("1.50", "2"),
    "davinci-002": _tokens("2", "2"),
    "babbage-002": _tokens("0.40", "0.40"),
    # embeddings
    "text-embedding-3-small": _tokens("0.02", "0"),
    "text-embedding-3-large": _tokens("0.13", "0"),
    "text-embedding-ada-002": _tokens("0.10", "0"),
    # images (per image; `size/quality` keys override `per_image`)
    "gpt-image-1": {**_tokens("5", "0"), "per_image": "0.042", "image_prices": _GPT_IMAGE_1},
    "gpt-image-1-mini": {**_tokens("2", "0"), "per_image": "0.011"},
    "dall-e-3": {
        "per_image": "0.04",
        "image_prices": {
            "1024x1024/standard": "0.04",
            "1024x1024/hd": "0.08",
            "1792x1024/standard": "0.08",
            "1024x1792/standard": "0.08",
            "1792x1024/hd": "0.12",
            "1024x1792/hd": "0.12",
        },
    },
    "dall-e-2": {"per_image": "0.02", "image_prices": {"256x256": "0.016", "512x512": "0.018"}},
    "flux": {"per_image": "0.025"},
    "flux-dev": {"per_image": "0.025"},
    "flux-schnell": {"per_image": "0.003"},
    "flux-pro": {"per_image": "0.05"},
    "flux-pro-1.1": {"per_image": "0.04"},
    "flux-pro-1.1-ultra": {"per_image": "0.06"},
    "flux-kontext-pro": {"per_image": "0.04"},
    "flux-kontext-max": {"per_image": "0.08"},
    "flux-2-pro": {"per_image": "0.03"},
    "flux-2-max": {"per_image": "0.07"},
    "flux-2-flex": {"per_image": "0.06"},
    # image by chat: the image is the output, priced per image (not also as output tokens)
    "gpt-4o-image": {**_tokens("2.50", "0"), "per_image": "0.04"},
    "gpt-4o-all": {**_tokens("2.50", "0"), "per_image": "0.04"},
    "gemini-2.5-flash-image-preview": {**_tokens("0.30", "0"), "per_image": "0.039"},
    "gemini-2.5-flash-image": {**_tokens("0.30", "0"), "per_image": "0.039"},
    # audio
    "tts-1": {"per_1m_chars": "15"},
    "tts": {"per_1m_chars": "15"},
    "tts-1-hd": {"per_1m_chars": "30"},
    "gpt-4o-mini-tts": {"per_1m_chars": "12"},
    "whisper-1": {"per_second": "0.0001"},
    "gpt-4o-transcribe": {"per_second": "0.0001"},
    "gpt-4o-mini-transcribe": {"per_second": "0.00005"},
    # MidJourney, per task (new-api's defaults); `image_prices` holds the price per speed mode
    # (see docs/mj.md: reserved at the mode the prompt asks for, settled at the mode run)
    **_MJ_PRICES,
    **_VIDEO_PRICES,
}
