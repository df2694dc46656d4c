"""The checks a key's own settings impose, each with the error a client expects."""

from __future__ import annotations

import time
from ipaddress import ip_address

from aitre.accounts.auth import Caller
from aitre.errors import ApiError


def check_expiry(caller: Caller, now_ms: int | None = None) -> None:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if caller.expires_at is not None and caller.expires_at <= now:
        raise ApiError(401, "This API key has expired.", code="expired_api_key")


def check_ip(caller: Caller, client_ip: str) -> None:
    if caller.allowed_ips is None:
        return
    try:
        ip = ip_address(client_ip)
    except ValueError:
        ip = None
    if ip is None or not any(ip in net for net in caller.allowed_ips):
        raise ApiError(
            403, f"This API key may not be used from {client_ip or 'this address'}.", code="ip_not_allowed"
        )


def model_allowed(caller: Caller, model: str) -> bool:
    return caller.allowed_models is None or model in caller.allowed_models


def check_model(caller: Caller, model: str) -> None:
    if not model_allowed(caller, model):
        raise ApiError(
            403, f"This API key may not use the model `{model}`.", param="model", code="model_not_allowed"
        )


def check_key(caller: Caller, client_ip: str, model: str | None = None) -> None:
    check_expiry(caller)
    check_ip(caller, client_ip)
    if model is not None:
        check_model(caller, model)
