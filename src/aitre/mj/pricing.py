"""What an MJ task costs: a price per task (model `mj_<action>`), by speed mode.

An MJ price's `per_call` is the fast-mode price; its `image_prices` may name a price per mode
(`fast`, `relax`, `turbo`). The reservation is the price of the mode the prompt asks for
(`--relax`, `--turbo`, `--fast`; fast when it names none); on success the task is charged the
price of the mode the upstream reports it ran in (else the one asked for), never more than was
reserved.
"""

from __future__ import annotations

import re
from decimal import Decimal

from aitre.billing.prices import ModelPrice, to_units

MODES = ("fast", "relax", "turbo")
_FLAG = re.compile(r"(?:^|\s)--(fast|relax|turbo)\b", re.IGNORECASE)


def asked_mode(prompt: str | None) -> str | None:
    """The last speed flag in a prompt, as MJ reads it, or None."""
    found = _FLAG.findall(prompt or "")
    return found[-1].lower() if found else None


def mode_of(value: object) -> str | None:
    """A mode as upstreams report it (`FAST`, `relax`, `TURBO`...), or None."""
    if isinstance(value, str) and value.lower() in MODES:
        return value.lower()
    return None


def units(price: ModelPrice, mode: str | None, multiplier: Decimal, per_usd: int) -> int:
    """The task's price in units, for `mode` (None: fast, the `per_call` price)."""
    usd = price.image_prices.get(mode, price.per_call) if mode else price.per_call
    return to_units(usd, multiplier, per_usd)
