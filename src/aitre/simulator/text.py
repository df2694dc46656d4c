"""Deterministic text for simulated completions: the same prompt always gives the same reply.

Every vocabulary word (with its leading space) is a single token in both cl100k_base and
o200k_base, so a reply of N words is N tokens and `max_tokens` cuts it exactly.
"""

from __future__ import annotations

import hashlib
import random

_WORDS = (
    " the",
    " a",
    " cat",
    " dog",
    " sun",
    " sky",
    " tree",
    " river",
    " stone",
    " light",
    " quiet",
    " small",
    " green",
    " blue",
    " red",
    " old",
    " new",
    " fast",
    " slow",
    " warm",
    " cold",
    " city",
    " road",
    " house",
    " bird",
    " song",
    " rain",
    " wind",
    " night",
    " day",
    " time",
    " world",
    " hand",
    " book",
    " door",
    " window",
    " table",
    " water",
    " fire",
    " field",
    " garden",
    " friend",
    " story",
    " dream",
    " idea",
    " word",
    " line",
    " page",
    " paper",
    " ship",
    " sea",
    " hill",
    " star",
    " moon",
    " walks",
    " runs",
    " sings",
    " reads",
    " writes",
    " sees",
    " finds",
    " makes",
    " takes",
    " gives",
    " and",
    " with",
    " over",
    " under",
    " near",
    " from",
    " into",
    " through",
    " after",
    " before",
)
_FIRST = ("The", "A", "This", "One", "Every", "Our", "Some", "That")


def _rng(seed_text: str) -> random.Random:
    return random.Random(hashlib.sha256(seed_text.encode()).digest())


def reply_words(
    prompt: str, model: str, choice: int = 0, max_tokens: int | None = None
) -> tuple[list[str], bool]:
    """The reply as a list of one-token pieces, and whether `max_tokens` cut it short."""
    if "say this is a test" in prompt.lower():
        words = ["This", " is", " a", " test", "!"]
    else:
        rng = _rng(f"{model}\x00{choice}\x00{prompt}")
        length = rng.randint(12, 36)
        words = [rng.choice(_FIRST)] + [rng.choice(_WORDS) for _ in range(length - 2)] + ["."]
    if max_tokens is not None and 0 <= max_tokens < len(words):
        return words[:max_tokens], True
    return words, False


def vocabulary() -> tuple[str, ...]:
    return (*_FIRST, *_WORDS, ".", "!", "This", " is", " test")
