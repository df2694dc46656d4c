"""openai SDK clients for tests, closed when the test ends (no leaked sockets)."""

from __future__ import annotations

import contextlib

import openai

from tests.support.processes import Gateway

_sync: list[openai.OpenAI] = []
_async: list[openai.AsyncOpenAI] = []


def client(gw: Gateway, key: str | None = None, **kw: object) -> openai.OpenAI:
    c = openai.OpenAI(base_url=gw.api, api_key=key or gw.user_key, max_retries=0, **kw)  # type: ignore[arg-type]
    _sync.append(c)
    return c


def aclient(gw: Gateway, key: str | None = None, **kw: object) -> openai.AsyncOpenAI:
    c = openai.AsyncOpenAI(base_url=gw.api, api_key=key or gw.user_key, max_retries=0, **kw)  # type: ignore[arg-type]
    _async.append(c)
    return c


async def close_all() -> None:
    while _sync:
        _sync.pop().close()
    while _async:
        with contextlib.suppress(RuntimeError):
            await _async.pop().close()
