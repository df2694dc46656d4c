"""What every simulator route shares: state, auth, the event log, fault handling, error bodies,
and the helpers that end a request with a fault applied."""

from __future__ import annotations

import asyncio
import collections
import hmac
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from aitre.accounts.keys import parse_bearer
from aitre.simulator.bfl_tasks import TaskBook
from aitre.simulator.faults import Fault, FaultBook, parse_fault
from aitre.simulator.files import FileStore
from aitre.simulator.video_tasks import VideoBook
from aitre.tokenizer import Tokenizer

# The keys the simulator accepts, asked on every request (the gateway's simulator channels can
# change while it runs). No key at all: every request is refused.
KeySource = Callable[[], Iterable[str]]
# Builds an error response: (status, message, code, headers). OpenAI's shape by default; the
# BFL routes pass their own.
ErrorFactory = Callable[[int, str, str | None, dict[str, str] | None], Response]
_ROOT_KEY = "aitre.sim_root"
T = TypeVar("T")


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

    def end(self, outcome: str) -> None:
        self.outcome, self.ended = outcome, time.time()


@dataclass(slots=True)
class SimState:
    tokenizer: Tokenizer
    keys: KeySource
    faults: FaultBook = field(default_factory=FaultBook)
    events: collections.deque[SimEvent] = field(default_factory=lambda: collections.deque(maxlen=2000))
    counter: itertools.count[int] = field(default_factory=itertools.count)
    requests: int = 0
    files: FileStore = field(default_factory=FileStore)
    tasks: TaskBook = field(default_factory=TaskBook)
    pending_polls: int = 2  # BFL: how many polls answer `Pending` before the result
    videos: VideoBook = field(default_factory=VideoBook)  # `/v1/videos` tasks and video settings
    # Strong references: the event loop keeps only weak ones to running tasks.
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def open_event(self, path: str, model: str, stream: bool) -> SimEvent:
        ev = SimEvent(next(self.counter), path, model, stream, time.time())
        self.events.append(ev)
        self.requests += 1
        return ev

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


class RootPathMiddleware:
    """Remembers where the simulator is mounted (`/sim` in the gateway, `` alone) before inner
    mounts such as `/f/{spec}` extend `root_path`, so that the URLs it hands out (image files,
    BFL polling) point at the simulator itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_ROOT_KEY] = scope.get("root_path", "")
        await self.app(scope, receive, send)


def sim_url(request: Request, path: str) -> str:
    """An absolute URL to `path` (starting with `/`) on this simulator."""
    root = request.scope.get(_ROOT_KEY, "")
    return f"{request.url.scheme}://{request.url.netloc}{root}{path}"


def error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    etype = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        etype = "requests"
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")


def unknown_model(model: object) -> Response:
    return error(
        404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
    )


def unauthorized() -> Response:
    return error(401, "Incorrect API key provided.", "invalid_api_key")


def sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def authorized(request: Request, key: str | None = None) -> bool:
    """Whether the request carries one of the simulator's keys; `key` defaults to the bearer
    token, BFL routes pass their `x-key` header instead. Fails closed: with no key configured
    (the gateway has no simulator channel) nothing is authorized."""
    if key is None:
        key = parse_bearer(request.headers.get("authorization"))
    if not key:
        return False
    given = key.encode()
    allowed = sim(request).keys
    # Every key compared, each in constant time: the answer's timing tells nothing about them.
    return sum(hmac.compare_digest(given, k.encode()) for k in allowed() if k) > 0


def has_keys(request: Request) -> bool:
    allowed = sim(request).keys
    return any(allowed())


def fault_for(request: Request, model: str) -> Fault:
    spec = request.headers.get("x-sim-fault") or request.path_params.get("spec") or ""
    if not spec:
        spec = sim(request).faults.pick(request.url.path, model)
    return parse_fault(spec) if spec else Fault()


async def wait_for_disconnect(request: Request) -> None:
    """Block until the client hangs up: the request body is already read, so the next
    message the server delivers is the disconnect."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class CutBody(Response):
    """Promises a whole body, sends half, then drops the connection."""

    def __init__(self, body: bytes, media_type: str = "application/json") -> None:
        super().__init__(body, media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionAbortedError("simulated truncated response")


_FAULT_MESSAGES = {
    401: ("Incorrect API key provided.", "invalid_api_key"),
    429: ("Rate limit reached for requests.", "rate_limit_exceeded"),
}


async def apply_pre_faults(
    request: Request, fault: Fault, ev: SimEvent, make_error: ErrorFactory = error
) -> Response | None:
    """Delay, hang or fail before any work is done; None when the request should go on."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.hang:
        await wait_for_disconnect(request)
        ev.end("disconnected")
        return Response(status_code=499)
    if fault.status:
        ev.end("fault")
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        message, code = _FAULT_MESSAGES.get(fault.status, (f"Simulated upstream error {fault.status}.", None))
        return make_error(fault.status, message, code, headers)
    return None


async def begin(
    request: Request, model: str, stream: bool, make_error: ErrorFactory = error
) -> tuple[SimEvent, Fault] | Response:
    """Log the request and apply the faults that act before an answer starts."""
    ev = sim(request).open_event(request.url.path, model, stream)
    fault = fault_for(request, model)
    early = await apply_pre_faults(request, fault, ev, make_error)
    if early is not None:
        return early
    if fault.bad_json:
        ev.end("fault")
        return Response(b'{"id": "sim-broken", "data": [', media_type="application/json")
    return ev, fault


def json_answer(payload: Any, fault: Fault, ev: SimEvent, status: int = 200) -> Response:
    """The final JSON answer (an object, or its serialised bytes), cut half-way when the fault
    says `truncate`."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    if fault.truncate >= 0:
        ev.end("fault")
        return CutBody(body)
    ev.end("completed")
    return Response(body, status_code=status, media_type="application/json")


def text_answer(text: str, fault: Fault, ev: SimEvent) -> Response:
    """A plain-text answer (transcripts, subtitles), cut half-way when the fault says `truncate`."""
    body = text.encode()
    if fault.truncate >= 0:
        ev.end("fault")
        return CutBody(body, "text/plain; charset=utf-8")
    ev.end("completed")
    return Response(body, media_type="text/plain; charset=utf-8")


async def open_plain(request: Request) -> Response | None:
    """The prelude of a route without a body (models list, billing): the key, then any fault
    (gateways probe channels with these requests). None: go on and answer."""
    if not authorized(request):
        return unauthorized()
    started = await begin(request, "", False)
    if isinstance(started, Response):
        return started
    started[0].end("completed")
    return None


async def open_json(request: Request, models: Iterable[str]) -> tuple[dict[str, Any], str] | Response:
    """The prelude of every JSON route: the key, a JSON object body, a model this route serves."""
    if not authorized(request):
        return unauthorized()
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    model = body.get("model")
    if not isinstance(model, str) or model not in models:
        return unknown_model(model)
    return body, model


async def bounded_body(request: Request, limit: int) -> bytes | Response:
    """The request body, or 413 as soon as it is known to exceed `limit` (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return error(413, f"The body is larger than {limit} bytes.", "body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return error(413, f"The body is larger than {limit} bytes.", "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return bad_request("We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return bad_request("The body must be a JSON object.")
    return body


def sse(item: Any) -> bytes:
    return b"data: " + orjson.dumps(item) + b"\n\n"


async def _from_list(pieces: Iterable[tuple[bytes, bool]]) -> AsyncIterator[tuple[bytes, bool]]:
    for piece in pieces:
        yield piece


async def stream_pieces(
    request: Request,
    pieces: AsyncIterable[tuple[bytes, bool]] | Iterable[tuple[bytes, bool]],
    fault: Fault,
    ev: SimEvent,
    tail: bytes = b"",
) -> AsyncIterator[bytes]:
    """Send `(bytes, counts)` pieces with the stream faults applied; `truncate=N`/`stall=N`
    act after N counting pieces (content chunks, audio pieces), then `tail` ends the stream."""
    source = pieces if isinstance(pieces, AsyncIterable) else _from_list(pieces)
    try:
        sent = 0
        async for raw, counts in source:
            if counts and 0 <= fault.truncate <= sent:
                ev.outcome = "fault"
                raise ConnectionAbortedError("simulated truncated stream")
            if counts and 0 <= fault.stall <= sent:
                ev.outcome = "fault"
                await wait_for_disconnect(request)
                ev.outcome = "disconnected"
                return
            if fault.chunk_delay:
                await asyncio.sleep(fault.chunk_delay)
            sent += counts
            yield raw
        if tail:
            yield tail
        ev.outcome = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        ev.outcome = "disconnected"
        raise
    finally:
        ev.ended = time.time()
        # Stop the producer now (an encoder thread, say), not whenever the generator is collected.
        if isinstance(source, AsyncGenerator):
            await source.aclose()


def sse_response(
    request: Request, pieces: Iterable[tuple[bytes, bool]], fault: Fault, ev: SimEvent
) -> Response:
    """An OpenAI-style event stream ending in `data: [DONE]`."""
    return StreamingResponse(
        stream_pieces(request, pieces, fault, ev, tail=b"data: [DONE]\n\n"),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )
