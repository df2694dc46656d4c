"""The lean Python bound: the least a Python gateway does on the usual stack.

Starlette on uvicorn (uvloop + httptools), one pooled aiohttp client, no auth, no JSON parsing,
no accounting: forward the body, stream the answer back. aitre does strictly more per request
(keys, routing, billing, usage logs), on its own upstream client and a corked transport, so
"aitre / lean" says whether all that fits in what a bare pass-through costs.

Run: BENCH_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.lean_proxy:app --loop uvloop \
     --http httptools --workers 1 --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8080").rstrip("/")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # The same pool settings as aitre's upstream client, so that the comparison is about the
    # work per request, not about connection handling.
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=30)
    app.state.session = aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    )
    yield
    await app.state.session.close()


async def chat(request: Request) -> Response:
    session: aiohttp.ClientSession = request.app.state.session
    headers = {"Content-Type": "application/json"}
    if auth := request.headers.get("authorization"):
        headers["Authorization"] = auth
    resp = await session.post(f"{UPSTREAM}/v1/chat/completions", data=await request.body(), headers=headers)
    content_type = resp.headers.get("Content-Type", "application/json")
    if not content_type.startswith("text/event-stream"):
        # A JSON answer is small: read it whole and send it with a Content-Length, which is
        # cheaper than chunked streaming and what any sensible proxy does.
        try:
            return Response(await resp.read(), status_code=resp.status, media_type=content_type)
        finally:
            resp.release()

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.release()

    return StreamingResponse(
        relay(), status_code=resp.status, media_type=content_type, headers={"Cache-Control": "no-cache"}
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
    lifespan=lifespan,
)
