"""Transcripts of a known duration in every shape OpenAI answers with: timed words, segments,
verbose JSON, SRT and WebVTT."""

from __future__ import annotations

import hashlib
import random
import zlib
from dataclasses import dataclass
from typing import Any

from aitre.simulator.text import vocabulary
from aitre.tokenizer import Tokenizer

WORDS_PER_SECOND = 2.5
_SEGMENT_WORDS = 16
LANGUAGES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "ru": "russian",
    "zh": "chinese",
    "ja": "japanese",
    "ko": "korean",
}


@dataclass(slots=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(slots=True)
class Segment:
    id: int
    words: list[Word]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end

    @property
    def text(self) -> str:
        return " " + " ".join(w.word for w in self.words)


def words_for(data: bytes, duration: float) -> str:
    """What an unknown recording "says": about 2.5 words a second, the same for the same bytes."""
    rng = random.Random(hashlib.sha256(data).digest())
    vocab = [w.strip() for w in vocabulary() if w.strip().isalpha()]
    count = max(1, round(duration * WORDS_PER_SECOND))
    words = [rng.choice(vocab) for _ in range(count)]
    return (" ".join(words)).capitalize() + "."


def timeline(text: str, duration: float) -> list[Word]:
    """Spread the words over the recording, each taking time in proportion to its length."""
    words = text.split()
    if not words:
        return []
    weights = [len(w) + 1 for w in words]
    scale = duration / sum(weights)
    out, t = [], 0.0
    for word, weight in zip(words, weights, strict=True):
        end = t + weight * scale
        out.append(Word(word, round(t, 2), round(end, 2)))
        t = end
    return out


def segments(words: list[Word]) -> list[Segment]:
    """Cut at sentence ends, or every _SEGMENT_WORDS words."""
    out: list[Segment] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        if word.word.endswith((".", "!", "?")) or len(current) >= _SEGMENT_WORDS:
            out.append(Segment(len(out), current))
            current = []
    if current:
        out.append(Segment(len(out), current))
    return out


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt(segs: list[Segment]) -> str:
    blocks = [
        f"{i + 1}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(segs)
    ]
    return "\n".join(blocks) + ("\n" if blocks else "")


def vtt(segs: list[Segment]) -> str:
    blocks = [f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n" for s in segs]
    return "WEBVTT\n\n" + "\n".join(blocks) + ("\n" if blocks else "")


def _segment_dict(seg: Segment, temperature: float, tokenizer: Tokenizer) -> dict[str, Any]:
    digest = hashlib.sha256(seg.text.encode()).digest()
    count = max(1, tokenizer.count(seg.text, "whisper-1"))
    tokens = [
        50364 + int.from_bytes(digest[(i * 2) % 32 : (i * 2) % 32 + 2], "big") % 50000 for i in range(count)
    ]
    raw = seg.text.encode()
    return {
        "id": seg.id,
        "seek": int(seg.start * 100),
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "tokens": tokens,
        "temperature": temperature,
        "avg_logprob": round(-0.15 - digest[0] / 2550, 4),
        "compression_ratio": round(len(raw) / len(zlib.compress(raw)), 4),
        "no_speech_prob": round(digest[1] / 25500, 4),
    }


@dataclass(slots=True)
class Transcript:
    task: str  # transcribe | translate
    language: str
    duration: float
    text: str

    def verbose(
        self, granularities: list[str], temperature: float, tokenizer: Tokenizer, usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        words = timeline(self.text, self.duration)
        out: dict[str, Any] = {
            "task": self.task,
            "language": self.language,
            "duration": round(self.duration, 2),
            "text": self.text,
        }
        if "segment" in granularities or not granularities:
            out["segments"] = [_segment_dict(s, temperature, tokenizer) for s in segments(words)]
        if "word" in granularities:
            out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in words]
        if usage is not None:
            out["usage"] = usage
        return out

    def subtitles(self, fmt: str) -> str:
        segs = segments(timeline(self.text, self.duration))
        return srt(segs) if fmt == "srt" else vtt(segs)
