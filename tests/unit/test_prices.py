"""Price arithmetic: exact decimals, one round-up per request, image and cached-token rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aitre.billing.limits import RateLimiter
from aitre.billing.pricebook import PriceBook
from aitre.billing.prices import ModelPrice, to_units
from aitre.relay.usage import Usage


def test_token_cost_rounds_up_once() -> None:
    p = ModelPrice.parse("m", {"input_per_1m": "0.15", "output_per_1m": "0.60"})
    usd = p.usd(Usage(prompt_tokens=13, completion_tokens=7))
    assert usd == Decimal("0.00000615")
    assert to_units(usd, Decimal(1), 500_000) == 4  # 3.075 units -> 4, never 0 for a paid request
    assert to_units(Decimal(0), Decimal(1), 500_000) == 0


def test_cached_tokens_and_group_multiplier() -> None:
    p = ModelPrice.parse("m", {"input_per_1m": "2", "output_per_1m": "8", "cached_input_per_1m": "0.5"})
    usd = p.usd(Usage(prompt_tokens=1000, cached_tokens=400, completion_tokens=100))
    assert usd == (Decimal(600) * 2 + Decimal(400) * Decimal("0.5") + Decimal(100) * 8) / 1_000_000
    assert to_units(usd, Decimal("1.5"), 500_000) == 1650


def test_image_prices_by_size_and_quality() -> None:
    p = ModelPrice.parse(
        "dall-e-3", {"per_image": "0.04", "image_prices": {"1792x1024/hd": "0.12", "512x512": "0.018"}}
    )
    assert p.usd(Usage(images=2), "1792x1024", "hd") == Decimal("0.24")
    assert p.usd(Usage(images=1), "512x512", "standard") == Decimal("0.018")
    assert p.usd(Usage(images=1), "1024x1024", None) == Decimal("0.04")


def test_seconds_chars_and_per_call() -> None:
    p = ModelPrice.parse("x", {"per_second": "0.0001", "per_1m_chars": "15", "per_call": "0.01"})
    assert p.usd(Usage(seconds=60.0, characters=1000)) == Decimal("0.01") + Decimal("0.006") + Decimal(
        "0.015"
    )


@pytest.mark.parametrize("bad", ["-1", "abc", "NaN", "Infinity"])
def test_bad_prices_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        ModelPrice.parse("m", {"input_per_1m": bad})


def test_pricebook_defaults_overrides_and_star() -> None:
    book = PriceBook()
    assert book.price("gpt-4o-mini") is not None
    assert book.price("unknown-model") is None
    from aitre.store.models import Group, Price

    book.load([Price(model="*", per_call="0.01", input_per_1m="0", output_per_1m="0", cached_input_per_1m="",
                     per_image="0", image_prices={}, per_second="0", per_1m_chars="0")],
              [Group(name="vip", multiplier="0.5", description="")])  # fmt: skip
    star = book.price("unknown-model")
    assert star is not None and star.per_call == Decimal("0.01")
    assert book.multiplier("vip") == Decimal("0.5") and book.multiplier("other") == 1


def test_rate_limiter_rpm_and_tpm_windows() -> None:
    now = [1000.0]
    rl = RateLimiter(clock=lambda: now[0])
    assert rl.check(1, rpm=2, tpm=0, tokens=0) is None
    assert rl.check(1, rpm=2, tpm=0, tokens=0) is None
    wait = rl.check(1, rpm=2, tpm=0, tokens=0)
    assert wait == 60
    now[0] += 30
    assert rl.check(1, rpm=2, tpm=0, tokens=0) == 30
    now[0] += 30
    assert rl.check(1, rpm=2, tpm=0, tokens=0) is None
    assert rl.check(2, rpm=0, tpm=100, tokens=80) is None
    assert rl.check(2, rpm=0, tpm=100, tokens=30) is not None
    rl.correct(2, estimated=80, actual=20)
    assert rl.check(2, rpm=0, tpm=100, tokens=30) is None
    assert rl.check(3, rpm=0, tpm=0, tokens=10**9) is None
