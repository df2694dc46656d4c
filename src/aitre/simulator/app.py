"""The simulator's ASGI app: OpenAI-compatible routes, fault injection, and an event log that
tests read to see what the upstream saw (e.g. that a connection was closed)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from aitre.accounts.keys import parse_bearer
from aitre.simulator import catalog
from aitre.simulator.chat import chat_chunks, chat_response, make_choices, usage_for
from aitre.simulator.faults import Fault, FaultBook, parse_fault
from aitre.tokenizer import Tokenizer

KeySource = Callable[[], Iterable[str]]


@dataclass(slots=True)
class SimEvent:
    id: int
    path: str
    model: str
    stream: bool
    started: float
    ended: float = 0.0
    outcome: str = "open"  # open | completed | disconnected | fault

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "model": self.model,
            "stream": self.stream,
            "started": self.started,
            "ended": self.ended,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class SimState:
    tokenizer: Tokenizer
    keys: KeySource | None = None
    faults: FaultBook = field(default_factory=FaultBook)
    events: collections.deque[SimEvent] = field(default_factory=lambda: collections.deque(maxlen=2000))
    counter: itertools.count[int] = field(default_factory=itertools.count)
    requests: int = 0

    def open_event(self, path: str, model: str, stream: bool) -> SimEvent:
        ev = SimEvent(next(self.counter), path, model, stream, time.time())
        self.events.append(ev)
        self.requests += 1
        return ev


def _error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    etype = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        etype = "requests"
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _authorized(request: Request) -> bool:
    keys = _sim(request).keys
    if keys is None:
        return True
    allowed = set(keys())
    if not allowed:
        return True
    return parse_bearer(request.headers.get("authorization")) in allowed


def _fault_for(request: Request, model: str) -> Fault:
    spec = request.headers.get("x-sim-fault") or request.path_params.get("spec") or ""
    if not spec:
        spec = _sim(request).faults.pick(request.url.path, model)
    return parse_fault(spec) if spec else Fault()


async def _wait_for_disconnect(request: Request) -> None:
    """Block until the client hangs up: the request body is already read, so the next
    message the server delivers is the disconnect."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class _CutBody:
    """An ASGI response that promises a body and then drops the connection half-way."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True}
        )
        raise ConnectionAbortedError("simulated truncated response")


async def _apply_pre_faults(request: Request, fault: Fault, ev: SimEvent) -> Response | None:
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.hang:
        await _wait_for_disconnect(request)
        ev.outcome, ev.ended = "disconnected", time.time()
        return Response(status_code=499)
    if fault.status:
        ev.outcome, ev.ended = "fault", time.time()
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        messages = {
            401: ("Incorrect API key provided.", "invalid_api_key"),
            429: ("Rate limit reached for requests.", "rate_limit_exceeded"),
        }
        message, code = messages.get(fault.status, (f"Simulated upstream error {fault.status}.", None))
        return _error(fault.status, message, code, headers)
    return None


def _sse(stream: Iterable[dict[str, Any]]) -> Iterable[bytes]:
    for item in stream:
        yield b"data: " + orjson.dumps(item) + b"\n\n"


async def _stream_events(
    request: Request, chunks: list[bytes], fault: Fault, ev: SimEvent, done: bool = True
) -> AsyncIterator[bytes]:
    try:
        sent_content = 0
        for raw in chunks:
            is_content = b'"content":"' in raw and b'"content":""' not in raw
            if is_content and fault.truncate >= 0 and sent_content >= fault.truncate:
                ev.outcome = "fault"
                raise ConnectionAbortedError("simulated truncated stream")
            if is_content and fault.stall >= 0 and sent_content >= fault.stall:
                ev.outcome = "fault"
                await _wait_for_disconnect(request)
                ev.outcome = "disconnected"
                return
            if fault.chunk_delay:
                await asyncio.sleep(fault.chunk_delay)
            sent_content += is_content
            yield raw
        if done:
            yield b"data: [DONE]\n\n"
        ev.outcome = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        ev.outcome = "disconnected"
        raise
    finally:
        ev.ended = time.time()


async def _json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    return body


async def chat_completions(request: Request) -> Response:
    if not _authorized(request):
        return _error(401, "Incorrect API key provided.", "invalid_api_key")
    body = await _json_body(request)
    if isinstance(body, Response):
        return body
    model = body.get("model")
    if not isinstance(model, str) or model not in catalog.CHAT_MODELS:
        return _error(404, f"The model `{model}` does not exist.", "model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "`messages` must be a non-empty array.")
    sim = _sim(request)
    stream = body.get("stream") is True
    ev = sim.open_event(request.url.path, model, stream)
    fault = _fault_for(request, model)
    early = await _apply_pre_faults(request, fault, ev)
    if early is not None:
        return early
    if fault.bad_json:
        ev.outcome, ev.ended = "fault", time.time()
        return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
    choices = make_choices(body, model)
    usage = (
        None if fault.no_usage else await asyncio.to_thread(usage_for, sim.tokenizer, body, model, choices)
    )
    if not stream:
        payload = orjson.dumps(chat_response(body, model, usage, choices))
        if fault.truncate >= 0:
            ev.outcome, ev.ended = "fault", time.time()
            return _CutBody(payload)  # type: ignore[return-value]
        ev.outcome, ev.ended = "completed", time.time()
        return Response(payload, media_type="application/json")
    chunks = list(_sse(chat_chunks(body, model, usage, choices)))
    return StreamingResponse(
        _stream_events(request, chunks, fault, ev),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


async def list_models(request: Request) -> Response:
    if not _authorized(request):
        return _error(401, "Incorrect API key provided.", "invalid_api_key")
    data = [
        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "simulator"}
        for m in catalog.all_models()
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def get_events(request: Request) -> Response:
    return Response(orjson.dumps([e.as_dict() for e in _sim(request).events]), media_type="application/json")


async def set_faults(request: Request) -> Response:
    try:
        rules = orjson.loads(await request.body())
        if isinstance(rules, dict):
            rules = [rules]
        _sim(request).faults.set_rules(rules)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return _error(400, f"bad fault rules: {exc}")
    return Response(orjson.dumps({"rules": len(_sim(request).faults.rules)}), media_type="application/json")


async def clear_faults(request: Request) -> Response:
    sim = _sim(request)
    sim.faults.set_rules([])
    sim.events.clear()
    return Response(orjson.dumps({"rules": 0}), media_type="application/json")


def _api_routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ]


def create_simulator_app(keys: KeySource | None = None, tokenizer: Tokenizer | None = None) -> Starlette:
    routes: list[BaseRoute] = [
        *_api_routes(),
        Mount("/f/{spec}", routes=_api_routes()),
        Route("/_sim/events", get_events, methods=["GET"]),
        Route("/_sim/faults", set_faults, methods=["POST", "PUT"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = SimState(tokenizer=tokenizer or Tokenizer(), keys=keys)
    return app
