"""The accountant's admission: a short prompt is counted exactly on the spot; a long one is
reserved at one token per byte without counting, counted exactly (in a worker thread) only when
the balance cannot pay that bound, and not even then when it cannot pay the fewest tokens the
prompt can be."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from aitre.accounts.auth import Caller
from aitre.billing.accountant import Accountant
from aitre.billing.bank import Bank, Hold, insufficient
from aitre.billing.limits import RateLimiter
from aitre.billing.pricebook import PriceBook
from aitre.config import Settings
from aitre.errors import ApiError
from aitre.relay.job import RelayJob
from aitre.store.models import Price
from aitre.tokenizer import Tokenizer

IN, OUT = 500, 1000  # units per input and output token
MAX_TOKENS = 10


class FakeBank:
    def __init__(self, balance: int) -> None:
        self.available = balance
        self.reserved: list[int] = []
        self.reads = 0

    async def reserve(self, hold: Hold) -> None:
        self.reserved.append(hold.amount)
        if hold.amount > self.available:
            raise insufficient(f"needs {hold.amount}, has {self.available}")
        self.available -= hold.amount

    async def balance(self, user_id: int) -> int:
        self.reads += 1
        return self.available

    async def token_remaining(self, token_id: int) -> int | None:
        return None


_ENCODINGS = Tokenizer()  # built once for the module (about a second per encoding)


class CountingTokenizer(Tokenizer):
    def __init__(self) -> None:
        super().__init__()
        self._counters = _ENCODINGS._counters
        self.threads: list[str] = []

    def count(self, text: str, model: str = "") -> int:
        self.threads.append(threading.current_thread().name)
        return super().count(text, model)


def _accountant(balance: int) -> tuple[Accountant, FakeBank, CountingTokenizer, RateLimiter]:
    book = PriceBook()
    price = Price(
        model="gpt-4o-mini",
        input_per_1m="1000",
        output_per_1m="2000",
        cached_input_per_1m="",
        per_call="0",
        per_image="0",
        image_prices={},
        per_second="0",
        per_1m_chars="0",
    )
    book.load([price], [])
    bank, tokenizer, limiter = FakeBank(balance), CountingTokenizer(), RateLimiter()
    settings = Settings(count_inline_bytes=8192)
    return Accountant(cast(Bank, bank), book, limiter, tokenizer, settings), bank, tokenizer, limiter


def _job(content: str, tpm: int = 0) -> RelayJob:
    caller = Caller(1, "k", 1, "u", "user", "default", tpm=tpm)
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
    }
    return RelayJob("req_1", caller, "chat.completions", "/chat/completions", "gpt-4o-mini", body)


FRAMING = 3 + 3  # one message
ROLE = len("user\n")
BIG = "word " * 4000  # 20,000 bytes, about 4,000 tokens


def _units(prompt_tokens: int) -> int:
    return prompt_tokens * IN + MAX_TOKENS * OUT


async def test_short_prompt_is_counted_exactly_on_the_loop() -> None:
    acct, bank, tok, _ = _accountant(10**9)
    job = _job("hello there")
    await acct.admit(job)
    exact = tok.count("user\nhello there", "gpt-4o-mini") + FRAMING
    assert bank.reserved == [_units(exact)]
    assert set(tok.threads) == {threading.current_thread().name}


async def test_long_prompt_with_the_balance_for_it_is_reserved_by_its_bytes_uncounted() -> None:
    acct, bank, tok, _ = _accountant(10**9)
    await acct.admit(_job(BIG))
    assert bank.reserved == [_units(ROLE + len(BIG) + FRAMING)]
    assert tok.threads == [] and bank.reads == 0


async def test_long_prompt_is_counted_in_a_thread_when_only_its_exact_cost_is_affordable() -> None:
    acct, bank, tok, _ = _accountant(_units(ROLE + len(BIG) + FRAMING) - 1)
    job = _job(BIG)
    await acct.admit(job)
    exact = _ENCODINGS.count("user\n" + BIG, "gpt-4o-mini") + FRAMING
    assert bank.reserved == [_units(ROLE + len(BIG) + FRAMING), _units(exact)]
    assert tok.threads and threading.current_thread().name not in tok.threads
    assert job.charge is not None and job.charge.estimated_tokens == exact + MAX_TOKENS


@pytest.mark.parametrize("balance", [0, _units(100)], ids=["zero", "below-the-least-it-can-cost"])
async def test_long_prompt_beyond_the_balance_is_refused_without_counting(balance: int) -> None:
    acct, bank, tok, limiter = _accountant(balance)
    with pytest.raises(ApiError) as refused:
        await acct.admit(_job(BIG, tpm=10**9))
    assert refused.value.status == 402 and refused.value.code == "insufficient_quota"
    assert tok.threads == [] and len(bank.reserved) == 1
    assert sum(n for _, n in limiter._tokens[1]) == 0  # the key's token window is given back


async def test_counted_but_still_too_dear_is_refused_and_the_window_given_back() -> None:
    acct, bank, tok, limiter = _accountant(_units(1000))  # above the least (163), below the real (~4000)
    with pytest.raises(ApiError) as refused:
        await acct.admit(_job(BIG, tpm=10**9))
    assert refused.value.status == 402
    assert len(bank.reserved) == 2 and tok.threads
    assert sum(n for _, n in limiter._tokens[1]) == 0
