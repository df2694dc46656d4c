"""Admission and billing of one request: the key's limits, the price, the reservation before
the upstream call, and the settlement (or refund) after it.

Admission costs little whatever the client sends. The key's own checks and the price come
first; prompts up to `AITRE_COUNT_INLINE_BYTES` are counted exactly on the event loop (well under
a millisecond), longer ones reserve one token per UTF-8 byte, an upper bound that takes no
counting (a BPE token is at least a byte). Only when the balance cannot cover that bound is the
prompt counted exactly, in a worker thread, and not even then when it could not cover the fewest
tokens the prompt can be (its bytes / 128): a zero balance is refused without any counting. The
upstream's reported usage settles the real cost either way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aitre.accounts.policy import check_key
from aitre.billing.bank import Bank, Hold, insufficient
from aitre.billing.limits import InFlight, Limiter
from aitre.billing.pricebook import PriceBook
from aitre.billing.prices import ModelPrice, to_units
from aitre.errors import ApiError
from aitre.relay.usage import Usage, chat_framing, prompt_text, utf8_size
from aitre.tokenizer import LONGEST_TOKEN_BYTES

if TYPE_CHECKING:
    from aitre.accounts.auth import Caller
    from aitre.config import Settings
    from aitre.relay.job import RelayJob
    from aitre.tokenizer import Tokenizer


@dataclass(slots=True)
class Charge:
    hold: Hold
    price: ModelPrice
    multiplier: Decimal
    size: str | None
    quality: str | None
    estimated_tokens: int


# A request's prompt, measured before any counting: (UTF-8 bytes of its text, tokens known
# without counting (chat framing, token-id inputs), the text or texts to count).
Prompt = tuple[int, int, str | list[str]]


def not_priced(model: str) -> ApiError:
    return ApiError(
        400,
        f"The model `{model}` has no price here, so it cannot be used; ask the operator to set one.",
        param="model",
        code="model_not_priced",
    )


def _image_options(job: RelayJob) -> tuple[str | None, str | None]:
    size, quality = job.body.get("size"), job.body.get("quality")
    for name, value in job.form or ():
        if name == "size" and isinstance(value, str):
            size = value
        elif name == "quality" and isinstance(value, str):
            quality = value
    size = "1024x1024" if size in (None, "auto") else size
    return (str(size), str(quality) if quality is not None else None)


def _count(value: Any, n: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else n


class Accountant:
    def __init__(
        self,
        bank: Bank,
        prices: PriceBook,
        limiter: Limiter,
        tokenizer: Tokenizer,
        settings: Settings,
    ) -> None:
        self.bank = bank
        self.prices = prices
        self.limiter = limiter
        self.tokenizer = tokenizer
        self.settings = settings
        self.inflight = InFlight(settings.key_max_inflight)

    def prompt(self, job: RelayJob) -> Prompt:
        """The request's prompt, measured (not counted)."""
        endpoint, body = job.endpoint, job.body
        if endpoint == "chat.completions" or endpoint == "completions":
            text = prompt_text(body)
            return utf8_size(text), chat_framing(body), text
        if endpoint == "embeddings":
            texts, known = _embedding_inputs(body.get("input"))
            return sum(utf8_size(t) for t in texts), known, texts
        if endpoint.startswith("images."):
            prompt = body.get("prompt")
            text = prompt if isinstance(prompt, str) else ""
            return utf8_size(text), 0, text
        return 0, 0, ""

    def count(self, text: str | list[str], model: str) -> int:
        """The exact tokens of a prompt's text (about 50 µs per KB; several times that for
        adversarial text)."""
        if isinstance(text, str):
            return self.tokenizer.count(text, model)
        return sum(self.tokenizer.count(t, model) for t in text)

    def usage(self, job: RelayJob, prompt_tokens: int, image_chat: bool = False) -> Usage:
        """What the request will use at most, given its prompt tokens: for the reservation."""
        body, known = job.body, job.known_units
        if job.endpoint in ("chat.completions", "completions"):
            if image_chat:
                return Usage(prompt_tokens=prompt_tokens, images=1)
            max_out = body.get("max_completion_tokens", body.get("max_tokens"))
            out = _count(max_out, self.settings.default_completion_estimate)
            return Usage(prompt_tokens=prompt_tokens, completion_tokens=out * _count(body.get("n"), 1))
        if job.endpoint == "embeddings":
            return Usage(prompt_tokens=prompt_tokens)
        if job.endpoint.startswith("images."):
            raw_n: Any = (
                body.get("n") if job.form is None else next((v for k, v in job.form if k == "n"), "1")
            )
            images = _count(int(raw_n) if isinstance(raw_n, str) and raw_n.isdigit() else raw_n, 1)
            return Usage(prompt_tokens=prompt_tokens, images=images)
        return Usage(characters=known.characters, seconds=known.seconds)

    def units(self, charge: Charge, usage: Usage) -> int:
        return to_units(
            charge.price.usd(usage, charge.size, charge.quality),
            charge.multiplier,
            self.settings.quota_per_usd,
        )

    async def admit(self, job: RelayJob, image_chat: bool = False) -> None:
        """Check the key, price the request, take the rate limit slot and reserve its cost."""
        caller = job.caller
        price = self.check(job)
        size, quality = (
            _image_options(job) if job.endpoint.startswith("images.") or image_chat else (None, None)
        )
        await self.tokenizer.ready(job.model)
        nbytes, known, text = self.prompt(job)
        exact = nbytes <= self.settings.count_inline_bytes
        usage = self.usage(job, (self.count(text, job.model) if exact else nbytes) + known, image_chat)
        tokens = usage.prompt_tokens + usage.completion_tokens
        limited = caller.rpm > 0 or caller.tpm > 0
        wait = (
            await self.limiter.admit(caller.token_id, caller.rpm, caller.tpm, tokens, job.request_id)
            if limited
            else None
        )
        if wait is not None:
            raise ApiError(
                429,
                f"Rate limit of this API key reached; retry in {wait:g}s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(int(wait))},
            )
        charge = Charge(
            Hold(job.request_id, caller.user_id, caller.token_id, 0),
            price,
            self.prices.multiplier(caller.group),
            size,
            quality,
            tokens,
        )
        try:
            try:
                await self._reserve(charge, usage)
            except ApiError as refused:
                if exact or refused.code != "insufficient_quota":
                    raise
                # The byte bound was too dear for the balance; the exact count may not be. Not
                # even that when the balance cannot pay the fewest tokens the text can be.
                least = -(-nbytes // LONGEST_TOKEN_BYTES) + known
                await self._afford(caller, self.units(charge, self.usage(job, least, image_chat)))
                counted = await asyncio.to_thread(self.count, text, job.model)
                usage = self.usage(job, counted + known, image_chat)
                exact_tokens = usage.prompt_tokens + usage.completion_tokens
                self._recount(job, charge.estimated_tokens, exact_tokens)
                charge.estimated_tokens = exact_tokens
                await self._reserve(charge, usage)
        except BaseException:
            self._recount(job, charge.estimated_tokens, 0)
            raise
        job.charge = charge

    def check(self, job: RelayJob) -> ModelPrice:
        """The key's own checks (expiry, address, models) and the model's price."""
        check_key(job.caller, job.client_ip, job.model)
        price = self.prices.price(job.model)
        if price is None:
            raise not_priced(job.model)
        return price

    async def precheck(self, job: RelayJob, least: Usage) -> None:
        """Refuse now, before costly work on the input (decoding audio), a request that its key
        may not make or whose balance cannot pay for even `least`."""
        price = self.check(job)
        multiplier = self.prices.multiplier(job.caller.group)
        await self._afford(job.caller, to_units(price.usd(least), multiplier, self.settings.quota_per_usd))

    async def _reserve(self, charge: Charge, usage: Usage) -> None:
        charge.hold.amount = self.units(charge, usage)
        await self.bank.reserve(charge.hold)

    async def _afford(self, caller: Caller, least: int) -> None:
        """402 unless the user's balance and the key's own quota both hold `least` units (read
        without reserving: the reservation that follows is still the check that counts)."""
        if least <= 0:
            return
        available = await self.bank.balance(caller.user_id)
        if available < least:
            raise insufficient(
                f"Insufficient balance: the request needs at least {least} units, the account has "
                f"{available}."
            )
        remaining = await self.bank.token_remaining(caller.token_id)
        if remaining is not None and remaining < least:
            raise insufficient(
                f"This API key's quota is used up: the request needs at least {least} units, the key "
                f"has {remaining} left."
            )

    def _recount(self, job: RelayJob, estimated: int, actual: int) -> None:
        """Put what an admitted request really used into its key's token window (only keys
        with a TPM limit have one)."""
        if job.caller.tpm > 0:
            self.limiter.correct(job.caller.token_id, estimated, actual, job.request_id)

    def close(self, job: RelayJob, status: int, usage: Usage) -> int:
        """Settle at the real cost when anything was delivered, else refund. Returns units charged."""
        charge = job.charge
        if charge is None:
            return 0
        job.charge = None
        delivered = status == 200 or usage.completion_tokens > 0 or usage.images > 0
        self._recount(job, charge.estimated_tokens, usage.total_tokens if delivered else 0)
        if not delivered:
            self.bank.refund(charge.hold, note=f"request failed ({status})")
            return 0
        return self.bank.settle(charge.hold, self.units(charge, usage))


def _embedding_inputs(value: Any) -> tuple[list[str], int]:
    """An embeddings `input`: its texts, and its tokens given as token ids."""
    if isinstance(value, str):
        return [value], 0
    if not isinstance(value, list):
        return [], 0
    if all(isinstance(v, int) for v in value):
        return [], len(value)
    texts: list[str] = []
    known = 0
    for item in value:
        more, ids = _embedding_inputs(item)
        texts += more
        known += ids
    return texts, known
