"""Simulator building blocks: fault specs, deterministic one-token words."""

from __future__ import annotations

import random

import pytest

from aitre.simulator.faults import FaultBook, parse_fault
from aitre.simulator.text import reply_words, vocabulary
from aitre.tokenizer import Tokenizer


def test_parse_fault_items() -> None:
    f = parse_fault("status=429,retry_after=3;delay=0.5")
    assert (f.status, f.retry_after, f.delay) == (429, "3", 0.5)
    assert parse_fault("hang").hang
    assert parse_fault("truncate=3").truncate == 3
    assert parse_fault("stall").stall == 0
    assert not parse_fault("").active
    with pytest.raises(ValueError, match="unknown fault item"):
        parse_fault("explode")


def test_probability_is_honoured() -> None:
    rng = random.Random(7)
    fired = sum(parse_fault("status=500,p=0.25", rng).active for _ in range(4000))
    assert 800 < fired < 1200


def test_fault_book_times_and_matching() -> None:
    book = FaultBook()
    book.set_rules([{"spec": "status=401", "path": "/chat", "times": 2}, {"spec": "hang", "model": "x"}])
    assert book.pick("/v1/chat/completions", "gpt") == "status=401"
    assert book.pick("/v1/chat/completions", "gpt") == "status=401"
    assert book.pick("/v1/chat/completions", "gpt") == ""
    assert book.pick("/v1/embeddings", "x") == "hang"
    with pytest.raises(ValueError, match="unknown fault item"):
        book.set_rules([{"spec": "boom"}])


def test_reply_is_deterministic_and_cut_by_max_tokens() -> None:
    a, cut_a = reply_words("tell me", "gpt-4o")
    b, _ = reply_words("tell me", "gpt-4o")
    assert a == b and not cut_a
    assert reply_words("tell me", "gpt-4o", choice=1)[0] != a
    short, cut = reply_words("tell me", "gpt-4o", max_tokens=4)
    assert short == a[:4] and cut


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-3.5-turbo"])
def test_every_word_is_one_token(model: str) -> None:
    tok = Tokenizer()
    assert [w for w in vocabulary() if tok.count(w, model) != 1] == []
