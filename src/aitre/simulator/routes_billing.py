"""The OpenAI-style billing "dashboard" endpoints that gateways read a channel's balance from.
The simulated account has a 100 USD limit and each answered request uses one cent."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator.common import authorized, begin, sim, unauthorized

HARD_LIMIT_USD = 100.0


async def _open(request: Request) -> Response | None:
    if not authorized(request):
        return unauthorized()
    started = await begin(request, "", False)
    if isinstance(started, Response):
        return started
    started[0].end("completed")
    return None


async def subscription(request: Request) -> Response:
    refused = await _open(request)
    if refused is not None:
        return refused
    body = {"object": "billing_subscription", "has_payment_method": True, "hard_limit_usd": HARD_LIMIT_USD}
    return Response(orjson.dumps(body), media_type="application/json")


async def usage(request: Request) -> Response:
    refused = await _open(request)
    if refused is not None:
        return refused
    body = {"object": "list", "total_usage": float(sim(request).requests)}  # cents
    return Response(orjson.dumps(body), media_type="application/json")
