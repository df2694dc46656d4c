"""The simulator's ASGI app: the routes of every protocol it speaks, fault injection, and the
control endpoints (`/_sim/...`) that tests use to set faults and read what the upstream saw.

Every route but `/files/{name}` needs one of the simulator's keys, the control endpoints too:
they can make every request fail or hang and list every request's path. `/files/{name}` serves
what the generation routes handed out under a 128-bit random name, to key holders only; like
OpenAI's and BFL's signed links, the name is the credential (the gateway and clients fetch such
links without a key). With no key configured the simulator refuses everything, files included."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from aitre.simulator import catalog
from aitre.simulator.common import (
    KeySource,
    RootPathMiddleware,
    SimState,
    authorized,
    bad_request,
    bounded_body,
    has_keys,
    open_plain,
    sim,
    unauthorized,
    unknown_model,
)
from aitre.simulator.mj import MjState
from aitre.simulator.mj_http import mj_state
from aitre.simulator.routes_audio import speech, transcriptions, translations
from aitre.simulator.routes_bfl import get_result, submit
from aitre.simulator.routes_billing import subscription, usage
from aitre.simulator.routes_chat import chat_completions
from aitre.simulator.routes_completions import completions
from aitre.simulator.routes_embeddings import embeddings
from aitre.simulator.routes_images import edits, generations, get_file
from aitre.simulator.routes_mj import mj_routes
from aitre.simulator.routes_videos import video_routes
from aitre.tokenizer import Tokenizer

__all__ = ["KeySource", "SimState", "create_simulator_app"]

# Fault rules and settings are small; a bigger body is refused before it is read.
CONTROL_BODY_LIMIT = 64 * 1024


def _model(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "simulator"}


async def list_models(request: Request) -> Response:
    refused = await open_plain(request)
    if refused is not None:
        return refused
    data = [_model(m) for m in catalog.all_models()]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def get_model(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    model_id = request.path_params["model"]
    if model_id not in catalog.all_models():
        return unknown_model(model_id)
    return Response(orjson.dumps(_model(model_id)), media_type="application/json")


async def _control_body(request: Request) -> bytes | Response:
    """The key, then the body of a control request, bounded."""
    if not authorized(request):
        return unauthorized()
    return await bounded_body(request, CONTROL_BODY_LIMIT)


async def get_events(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    return Response(orjson.dumps([e.as_dict() for e in sim(request).events]), media_type="application/json")


async def set_faults(request: Request) -> Response:
    raw = await _control_body(request)
    if isinstance(raw, Response):
        return raw
    try:
        rules = orjson.loads(raw)
        if isinstance(rules, dict):
            rules = [rules]
        sim(request).faults.set_rules(rules)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return bad_request(f"bad fault rules: {exc}")
    return Response(orjson.dumps({"rules": len(sim(request).faults.rules)}), media_type="application/json")


async def clear_faults(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    state = sim(request)
    state.faults.set_rules([])
    state.events.clear()
    return Response(orjson.dumps({"rules": 0}), media_type="application/json")


async def set_config(request: Request) -> Response:
    """Runtime settings: `{"pending_polls": N}` (how many BFL polls answer `Pending`),
    `mj_step_seconds` and `mj_steps` (the clock of new MJ tasks), and the `video_*` settings of
    `video_tasks.VideoSettings`."""
    raw = await _control_body(request)
    if isinstance(raw, Response):
        return raw
    state = sim(request)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return bad_request("The body must be JSON.")
    polls = body.get("pending_polls", state.pending_polls) if isinstance(body, dict) else None
    if type(polls) is not int or polls < 0:
        return bad_request("`pending_polls` must be a non-negative integer.")
    mj_error = mj_state(request).configure(body)
    if mj_error:
        return bad_request(mj_error)
    try:
        state.videos.settings.update(body)
    except ValueError as exc:
        return bad_request(str(exc))
    state.pending_polls = polls
    answer = {
        "pending_polls": state.pending_polls,
        **mj_state(request).settings(),
        **state.videos.settings.as_dict(),
    }
    return Response(orjson.dumps(answer), media_type="application/json")


def _api_routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/images/generations", generations, methods=["POST"]),
        Route("/v1/images/edits", edits, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", translations, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/dashboard/billing/subscription", subscription, methods=["GET"]),
        Route("/v1/dashboard/billing/usage", usage, methods=["GET"]),
        Route("/v1/models/{model}", get_model, methods=["GET"]),
        Route("/v1/get_result", get_result, methods=["GET"]),
        *video_routes(),
        # Last: BFL's submit path is any single segment under /v1.
        Route("/v1/{model}", submit, methods=["POST"]),
        *mj_routes(),
    ]


async def serve_file(request: Request) -> Response:
    if not has_keys(request):
        return unauthorized()
    return await get_file(request)


def create_simulator_app(
    keys: KeySource, tokenizer: Tokenizer | None = None, *, pending_polls: int = 2
) -> Starlette:
    """`keys`: the keys it accepts, asked on every request; none means it refuses everything."""
    routes: list[BaseRoute] = [
        *_api_routes(),
        Mount("/f/{spec}", routes=_api_routes()),
        Route("/files/{name}", serve_file, methods=["GET"]),
        Route("/_sim/events", get_events, methods=["GET"]),
        Route("/_sim/faults", set_faults, methods=["POST", "PUT"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/config", set_config, methods=["POST", "PUT"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(RootPathMiddleware)])
    app.state.sim = SimState(tokenizer=tokenizer or Tokenizer(), keys=keys, pending_polls=pending_polls)
    app.state.mj = MjState()
    return app
