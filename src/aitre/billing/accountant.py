"""Admission and billing of one request: the key's limits, the price, the reservation before
the upstream call, and the settlement (or refund) after it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aitre.accounts.policy import check_key
from aitre.billing.bank import Bank, Hold
from aitre.billing.limits import Limiter
from aitre.billing.pricebook import PriceBook
from aitre.billing.prices import ModelPrice, to_units
from aitre.errors import ApiError
from aitre.relay.usage import Usage, count_prompt

if TYPE_CHECKING:
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

    def estimate(self, job: RelayJob, image_chat: bool = False) -> Usage:
        """An upper bound of what the request will use, for the reservation."""
        body, known = job.body, job.known_units
        if job.endpoint in ("chat.completions", "completions"):
            prompt = count_prompt(self.tokenizer, body, job.model)
            if image_chat:
                return Usage(prompt_tokens=prompt, images=1)
            max_out = body.get("max_completion_tokens", body.get("max_tokens"))
            out = _count(max_out, self.settings.default_completion_estimate)
            return Usage(prompt_tokens=prompt, completion_tokens=out * _count(body.get("n"), 1))
        if job.endpoint == "embeddings":
            return Usage(prompt_tokens=_embedding_tokens(self.tokenizer, body.get("input"), job.model))
        if job.endpoint.startswith("images."):
            raw_n: Any = (
                body.get("n") if job.form is None else next((v for k, v in job.form if k == "n"), "1")
            )
            images = _count(int(raw_n) if isinstance(raw_n, str) and raw_n.isdigit() else raw_n, 1)
            text = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
            return Usage(prompt_tokens=self.tokenizer.count(str(text), job.model), images=images)
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
        check_key(caller, job.client_ip, job.model)
        price = self.prices.price(job.model)
        if price is None:
            raise not_priced(job.model)
        size, quality = (
            _image_options(job) if job.endpoint.startswith("images.") or image_chat else (None, None)
        )
        await self.tokenizer.ready(job.model)
        usage = self.estimate(job, image_chat)
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
        charge.hold.amount = self.units(charge, usage)
        try:
            await self.bank.reserve(charge.hold)
        except ApiError:
            self._recount(job, tokens, 0)
            raise
        job.charge = charge

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


def _embedding_tokens(tokenizer: Tokenizer, value: Any, model: str) -> int:
    if isinstance(value, str):
        return tokenizer.count(value, model)
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return len(value)
        return sum(_embedding_tokens(tokenizer, v, model) for v in value)
    return 0
