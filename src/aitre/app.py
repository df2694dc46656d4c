"""The ASGI application: routes, error handlers, and the lifespan that owns all state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aitre import __version__
from aitre.adapters.registry import build_registry
from aitre.api import audio, chat, completions, embeddings, health, images, media, models
from aitre.api.admin.routes import router as admin_router
from aitre.api.common import request_id
from aitre.api.fastpath import FastPath, Handler
from aitre.api.middleware.request_id import RequestIdMiddleware
from aitre.api.user.routes import router as user_router
from aitre.billing.accountant import Accountant
from aitre.billing.bank import LocalBank
from aitre.billing.books import Books
from aitre.billing.limits import RateLimiter
from aitre.billing.usage_log import UsageRecorder
from aitre.bootstrap import FirstKeys, bootstrap_if_empty, write_keys_file
from aitre.catalog import Catalog
from aitre.channels.health import ChannelHealth
from aitre.channels.ops import ChannelOps
from aitre.config import Settings
from aitre.errors import ApiError
from aitre.media.fetch import MediaFetcher
from aitre.media.store import MediaStore
from aitre.relay.upstream import Upstream
from aitre.secrets import SecretBox, load_or_create_key
from aitre.security.ssrf import AddressPolicy
from aitre.state import AppState
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.tokenizer import Tokenizer

log = logging.getLogger("aitre")


async def prepare_database(settings: Settings) -> FirstKeys | None:
    """Migrate to the newest schema and run the first-start bootstrap. Idempotent."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
    engine = make_engine(settings.resolved_database_url())
    try:
        await upgrade_to_head(engine)
        if not settings.bootstrap:
            return None
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            keys = await bootstrap_if_empty(
                session, box, with_simulator=settings.simulator_enabled, quota=settings.bootstrap_quota
            )
        if keys is not None and settings.write_initial_keys:
            write_keys_file(settings.data_dir, keys, settings.resolved_public_url())
        return keys
    finally:
        await engine.dispose()


def _relay_routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/completions", completions.completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
        Route("/v1/images/generations", images.generations, methods=["POST"]),
        Route("/v1/images/edits", images.edits, methods=["POST"]),
        Route("/v1/audio/speech", audio.speech, methods=["POST"]),
        Route("/v1/audio/transcriptions", audio.transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", audio.translations, methods=["POST"]),
        Route("/v1/models", models.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", models.get_model, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/media/{name}", media.get_media, methods=["GET", "HEAD"]),
    ]


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.to_response(request_id(request))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return ApiError(status, str(exc.detail), code=code, headers=dict(exc.headers or {})).to_response(
            request_id(request)
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"Invalid request: {first.get('msg', 'bad input')}" + (f" ({param})" if param else "")
        return ApiError(400, message, param=param).to_response(request_id(request))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = ApiError(500, "The gateway hit an internal error.", type="server_error", code="internal_error")
        return err.to_response(request_id(request))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


def _fast_routes() -> dict[tuple[str, str], Handler]:
    """The relay endpoints, dispatched without the FastAPI stack (see `api.fastpath`)."""
    return {
        (m, r.path): r.endpoint
        for r in _relay_routes()
        if r.path.startswith("/v1/") and "{" not in r.path
        for m in (r.methods or ())
        if m != "HEAD"
    }


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = await prepare_database(settings)
        if keys is not None:
            log.warning("first start: admin key %s, user key %s", keys.admin_key, keys.user_key)
        state = await _start_state(settings)
        app.state.aitre = state
        # Everything built so far (libraries, models, caches) lives as long as the process: keep
        # it out of the garbage collector's full passes, which otherwise scan 100k+ objects
        # (about 60 ms) every few hundred requests and show up as p99 spikes.
        gc.collect()
        gc.freeze()
        if sim_app is not None:
            sim_app.state.sim.tokenizer = state.tokenizer
        try:
            yield
        finally:
            await _stop_state(state)

    app = FastAPI(title="aitre", version=__version__, lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.router.routes.extend(_relay_routes())
    app.include_router(admin_router)
    app.include_router(user_router)
    _install_error_handlers(app)
    sim_app = None
    if settings.simulator_enabled:

        def simulator_keys() -> list[str]:
            state: AppState | None = getattr(app.state, "aitre", None)
            if state is None:
                return []
            return [c.secret for c in state.catalog.router.channels if c.type == "simulator" and c.secret]

        from aitre.simulator.app import create_simulator_app  # media libraries: only when mounted

        sim_app = create_simulator_app(keys=simulator_keys)
        app.mount("/sim", sim_app)
    app.add_middleware(RequestIdMiddleware)
    return FastPath(app, _fast_routes())


async def _start_state(settings: Settings) -> AppState:
    box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
    engine = make_engine(settings.resolved_database_url())
    sessions = make_sessionmaker(engine)
    catalog = Catalog(sessions, box, settings.cache_refresh_seconds, settings.internal_url() + "/sim")
    await catalog.reload()
    catalog.start()
    books = Books(sessions, settings.data_dir / "journal", settings.flush_seconds, settings.ledger_fsync)
    await books.recover()
    books.start()
    recorder = UsageRecorder(books)
    bank = LocalBank(sessions, books)
    catalog.on_change.append(bank.reload)
    tokenizer = Tokenizer()
    # Build the encoding of current models (about half a second) before serving, in a thread: a
    # request that had to wait for it would block the event loop for everyone. (cl100k_base, for
    # older models, is built on first use.)
    await asyncio.to_thread(tokenizer.count, "warm up", "gpt-4o")
    health = ChannelHealth(
        failure_threshold=settings.breaker_failures,
        error_rate=settings.breaker_error_rate,
        base_cooldown=settings.breaker_cooldown_seconds,
        max_cooldown=settings.breaker_max_cooldown_seconds,
    )
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        catalog=catalog,
        upstream=Upstream(settings),
        recorder=recorder,
        books=books,
        tokenizer=tokenizer,
        adapters=build_registry(),
        accountant=Accountant(bank, catalog.prices, RateLimiter(), tokenizer, settings),
        media=MediaStore(settings.resolved_media_dir(), settings.resolved_public_url()),
        fetcher=MediaFetcher(
            AddressPolicy(settings.fetch_allow_private, settings.fetch_allowed_cidrs),
            max_bytes=settings.fetch_max_bytes,
            timeout=settings.fetch_timeout,
        ),
        health=health,
        channel_ops=ChannelOps(sessions, health),
    )
    state.channel_ops.start(state)
    return state


async def _stop_state(state: AppState) -> None:
    await state.channel_ops.stop()
    await state.catalog.stop()
    await state.books.stop()
    await state.upstream.close()
    await state.fetcher.close()
    await state.engine.dispose()
