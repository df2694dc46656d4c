"""The OpenAI-style billing "dashboard" endpoints that gateways read a channel's balance from.
The simulated account has a 100 USD limit and each answered request uses one cent."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator.common import open_plain, sim

HARD_LIMIT_USD = 100.0


async def subscription(request: Request) -> Response:
    refused = await open_plain(request)
    if refused is not None:
        return refused
    body = {"object": "billing_subscription", "has_payment_method": True, "hard_limit_usd": HARD_LIMIT_USD}
    return Response(orjson.dumps(body), media_type="application/json")


async def usage(request: Request) -> Response:
    refused = await open_plain(request)
    if refused is not None:
        return refused
    body = {"object": "list", "total_usage": float(sim(request).requests)}  # cents
    return Response(orjson.dumps(body), media_type="application/json")
