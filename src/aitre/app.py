"""The ASGI application: the front door's routes, and the lifespan that owns all state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Mount
from starlette.types import ASGIApp

from aitre.adapters.chat_video import register as register_chat_video
from aitre.adapters.mj_proxy import register as register_mj
from aitre.adapters.registry import build_registry
from aitre.adapters.videos_api import register as register_videos
from aitre.api import audio, chat, completions, embeddings, health, images, media, models, videos
from aitre.api.fastpath import Gateway, Handler, PrefixRoute
from aitre.api.mj import callback as mj_callback
from aitre.api.mj import submit as mj_submit
from aitre.api.mj import tasks as mj_tasks
from aitre.billing.accountant import Accountant
from aitre.billing.bank import Bank, LocalBank
from aitre.billing.books import Books
from aitre.billing.instances import Instance, node_id
from aitre.billing.limits import Limiter, RateLimiter
from aitre.billing.recovery import recover_node
from aitre.billing.shared_bank import SharedBank
from aitre.billing.usage_log import UsageRecorder
from aitre.billing.writer import Quarantine
from aitre.bootstrap import FirstKeys, bootstrap_if_empty, write_keys_file
from aitre.catalog import Catalog
from aitre.channels.health import ChannelHealth
from aitre.channels.ops import ChannelOps
from aitre.chattask.render import register as register_chat_tasks
from aitre.config import Settings
from aitre.media.fetch import MediaFetcher
from aitre.media.store import open_media_store
from aitre.observe import scrape
from aitre.observe.guard import ScrapeGuard
from aitre.observe.logs import LogPipe, SecretMask
from aitre.observe.metrics import Metrics
from aitre.relay.upstream import Upstream
from aitre.remover.protocol import register as register_local_remover
from aitre.runtime_settings import RuntimeSettings
from aitre.secrets import SecretBox, load_or_create_key
from aitre.security.forwarded import ForwardedFor
from aitre.security.ssrf import AddressPolicy
from aitre.state import AppState
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import lock_schema, upgrade_to_head
from aitre.tasks.engine import TaskEngine
from aitre.tasks.registry import TaskRegistry, build_task_registry
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
            await lock_schema(await session.connection())  # one first start, however many begin at once
            keys = await bootstrap_if_empty(
                session, box, with_simulator=settings.simulator_enabled, quota=settings.bootstrap_quota
            )
        if keys is not None and settings.write_initial_keys:
            write_keys_file(settings.data_dir, keys, settings.resolved_public_url())
        return keys
    finally:
        await engine.dispose()


def _fast_routes() -> dict[tuple[str, str], Handler]:
    """Exact routes the gateway dispatches itself (see `api.fastpath`)."""
    routes: dict[tuple[str, str], Handler] = {
        ("POST", "/v1/chat/completions"): chat.chat_completions,
        ("POST", "/v1/completions"): completions.completions,
        ("POST", "/v1/embeddings"): embeddings.embeddings,
        ("POST", "/v1/images/generations"): images.generations,
        ("POST", "/v1/images/edits"): images.edits,
        ("POST", "/v1/audio/speech"): audio.speech,
        ("POST", "/v1/audio/transcriptions"): audio.transcriptions,
        ("POST", "/v1/audio/translations"): audio.translations,
        ("GET", "/v1/models"): models.list_models,
        ("POST", "/v1/videos"): videos.create,
        ("GET", "/v1/videos"): videos.list_videos,
        ("GET", "/healthz"): health.healthz,
        ("GET", "/readyz"): health.readyz,
        ("GET", "/metrics"): scrape.metrics,
        **mj_routes(),
    }
    return routes


def _prefix_routes() -> list[PrefixRoute]:
    return [
        PrefixRoute("/v1/models/", "model", models.get_model),
        PrefixRoute("/media/", "name", media.get_media),
        # The video routes with a suffix first: the one without would take their paths too.
        PrefixRoute("/v1/videos/", "video_id", videos.content, "/content"),
        PrefixRoute("/v1/videos/", "video_id", videos.remix, "/remix", ("POST",)),
        PrefixRoute("/v1/videos/", "video_id", videos.retrieve, "", ("GET",)),
        PrefixRoute("/v1/videos/", "video_id", videos.delete, "", ("DELETE",)),
        PrefixRoute("/mj/task/", "id", mj_tasks.fetch, "/fetch"),
        PrefixRoute("/mj/task/", "id", mj_tasks.image_seed, "/image-seed"),
    ]


def mj_routes() -> dict[tuple[str, str], Handler]:
    """The MidJourney API's exact routes (midjourney-proxy's paths)."""
    return {
        ("POST", "/mj/submit/imagine"): mj_submit.imagine,
        ("POST", "/mj/submit/blend"): mj_submit.blend,
        ("POST", "/mj/submit/describe"): mj_submit.describe,
        ("POST", "/mj/submit/shorten"): mj_submit.shorten,
        ("POST", "/mj/submit/action"): mj_submit.action,
        ("POST", "/mj/submit/modal"): mj_submit.modal,
        ("POST", "/mj/insight-face/swap"): mj_submit.swap_face,
        ("POST", "/mj/submit/swap_face"): mj_submit.swap_face,
        ("POST", "/mj/task/list-by-condition"): mj_tasks.list_by_condition,
        ("GET", "/mj/task/list"): mj_tasks.list_own,
        ("POST", "/mj/_callback"): mj_callback.callback,
    }


def create_app(settings: Settings | None = None) -> Gateway:
    settings = settings or Settings()
    registry = build_task_registry(settings)  # before the routes: a task kind may bring its own
    register_mj(registry)
    register_videos(registry, settings)  # before the chat side's: the `video` kind's own object wins
    register_chat_video(registry)
    register_local_remover(registry)
    register_chat_tasks(registry)
    gateway: Gateway

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[AppState]:
        keys = await prepare_database(settings)
        if keys is not None:
            # Never the keys themselves: logs are masked (and kept, and shipped). `aitre serve`
            # shows them once on the console.
            where = settings.data_dir / "initial-keys.env" if settings.write_initial_keys else None
            log.warning(
                "first start: an admin key and a user key were made; %s",
                f"they are in {where}" if where else "make another admin key with `aitre token create`",
            )
        state = await _start_state(settings, registry)
        if sim_app is not None:
            sim_app.state.sim.tokenizer = state.tokenizer
        # Everything built so far (libraries, models, caches) lives as long as the process: keep
        # it out of the garbage collector's full passes, which otherwise scan 100k+ objects
        # (about 60 ms) every few hundred requests and show up as p99 spikes.
        gc.collect()
        gc.freeze()
        # Requests free almost everything by reference counting; what a young-generation pass
        # finds is mostly the state of requests still in flight, scanned again and again (and
        # promoted) when passes come every 700 allocations. Every 20,000: a twentieth of the
        # passes, the same garbage collected (measured: -5% CPU per request at 64 in flight).
        gc.set_threshold(20_000, 10, 10)
        try:
            yield state
        finally:
            await _stop_state(state)

    def build_api() -> ASGIApp:
        from aitre.api.rest import build_api as build  # FastAPI: only when its routes are used

        return build(settings)

    mounts: list[Mount] = []
    sim_app = None
    if settings.simulator_enabled:
        from aitre.simulator.app import create_simulator_app  # media libraries: only when mounted

        def simulator_keys() -> list[str]:
            state: AppState | None = gateway.state
            if state is None:
                return []
            return [c.secret for c in state.catalog.router.channels if c.type == "simulator" and c.secret]

        sim_app = create_simulator_app(keys=simulator_keys)
        mounts.append(Mount("/sim", app=sim_app))
    gateway = Gateway({**_fast_routes(), **registry.routes}, _prefix_routes(), lifespan, build_api, mounts)
    return gateway


async def _start_state(settings: Settings, registry: TaskRegistry) -> AppState:
    # First: what goes wrong from here on is logged off the loop, secrets masked.
    mask = SecretMask()
    logs = LogPipe(mask)
    logs.install()
    box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
    engine = make_engine(settings.resolved_database_url())
    sessions = make_sessionmaker(engine)
    catalog = Catalog(sessions, box, settings.cache_refresh_seconds, settings.internal_url() + "/sim")

    async def know_secrets() -> None:
        channels = [c.secret for c in catalog.router.channels]
        mask.know([*channels, settings.metrics_token, settings.task_notify_secret, settings.secret_key])

    await catalog.reload()
    # The operator's run-time overrides, before anything reads the settings; again on every change.
    runtime = RuntimeSettings(settings, sessions)
    await runtime.load()
    catalog.on_change.append(runtime.load)
    await know_secrets()
    catalog.on_change.append(know_secrets)  # after the overrides: one may be a secret
    catalog.start()
    # One journal folder per process (named by its instance); with several workers the parent
    # recovered the data folder's earlier processes before starting them (`aitre.server`).
    several = settings.workers > 1
    journal_root, quarantine = settings.data_dir / "journal", Quarantine(settings.data_dir / "quarantine")
    node = node_id(settings.data_dir)
    recovered = (
        []
        if several
        else await recover_node(sessions, journal_root, node, f"{node}/start-{os.getpid()}", quarantine)
    )
    instance = Instance(
        sessions,
        node,
        journal_root,
        quarantine,
        settings.instance_heartbeat_seconds,
        settings.instance_dead_seconds,
    )
    await instance.register()
    books = Books(
        sessions,
        journal_root,
        instance.journal,
        settings.flush_seconds,
        settings.ledger_fsync,
        owner=lambda: instance.id,
        max_pending=settings.books_max_pending,
        quarantine=quarantine,
    )
    books.start()
    recorder = UsageRecorder(books)
    bank, limiter = _choose_bank(settings, sessions, books, several)
    prepare = getattr(bank, "prepare", None)  # Redis: learn its generation before owing it anything
    if prepare is not None:
        await prepare(await instance.others_alive())
    bank.absorb(recovered)  # refunds made on start reach balances kept outside the database
    instance.start(books.lock, bank.absorb)
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
    cluster = None
    if settings.redis_url:
        from aitre.billing.redis_bank import namespace
        from aitre.cluster import Cluster

        cluster = Cluster(settings.redis_url, namespace(settings.resolved_database_url()), catalog, health)
        cluster.start()
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        catalog=catalog,
        upstream=Upstream(settings),
        recorder=recorder,
        books=books,
        instance=instance,
        tokenizer=tokenizer,
        adapters=build_registry(),
        accountant=Accountant(bank, catalog.prices, limiter, tokenizer, settings),
        media=await open_media_store(settings),
        fetcher=MediaFetcher(
            AddressPolicy(settings.fetch_allow_private, settings.fetch_allowed_cidrs),
            max_bytes=settings.fetch_max_bytes,
            timeout=settings.fetch_timeout,
        ),
        health=health,
        channel_ops=ChannelOps(sessions, health),
        forwarded=ForwardedFor(settings.forwarded_allow_ips),
        metrics=Metrics(lambda: scrape.sample_gauges(state), settings.metrics_flush_seconds),
        scrape_guard=ScrapeGuard(settings.metrics_token, settings.metrics_allow_ips),
        logs=logs,
        runtime=runtime,
        cluster=cluster,
    )
    state.metrics.start()
    state.channel_ops.start(state)
    state.tasks = TaskEngine(state, registry)
    await state.tasks.start()
    return state


def _choose_bank(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], books: Books, several: bool
) -> tuple[Bank, Limiter]:
    """Where balances and RPM/TPM windows live. One process on SQLite: in memory (fastest).
    Several processes or a shared database: Redis when configured, else the database itself
    (balances exact but slower; rate limits per process)."""
    if not several and settings.is_sqlite:
        return LocalBank(sessions, books), RateLimiter()
    if settings.redis_url:
        from aitre.billing.redis_bank import RedisBalances, RedisBank
        from aitre.billing.redis_limits import RedisRateLimiter

        balances = RedisBalances(
            settings.redis_url,
            settings.resolved_database_url(),
            settings.redis_max_connections,
            settings.redis_reseed_seconds,
        )
        bank = RedisBank(sessions, books, balances, settings.key_max_inflight)
        return bank, RedisRateLimiter(balances.redis, balances.ns)
    if settings.is_sqlite:
        log.warning(
            "several workers on SQLite without AITRE_REDIS_URL: every request reserves in the database "
            "(exact, but slow); set AITRE_REDIS_URL for shared balances in Redis"
        )
    if several:
        log.warning(
            "several workers without AITRE_REDIS_URL: each enforces a key's RPM/TPM limit on the "
            "requests it serves; set AITRE_REDIS_URL to share the limits exactly"
        )
    return SharedBank(sessions, books), RateLimiter()


async def _stop_state(state: AppState) -> None:
    await state.tasks.stop()  # first: ending a task uses the bank and the books
    await state.channel_ops.stop()
    if state.cluster is not None:
        await state.cluster.stop()
    await state.catalog.stop()
    await state.instance.stop()
    if await state.books.stop():
        # Everything is written: refund what is still held open, and leave as stopped (else the
        # instance is recovered like a crashed one, from its journal, by the next start).
        try:
            state.accountant.bank.absorb(await state.instance.retire())
        except Exception:
            log.exception("could not retire this instance; it will be recovered after its heartbeat expires")
    await state.accountant.limiter.close()  # before the bank: they may share a Redis client
    closer = getattr(state.accountant.bank, "close", None)
    if closer is not None:
        await closer()
    await state.upstream.close()
    await state.fetcher.close()
    await state.media.close()
    await state.engine.dispose()
    await state.metrics.stop()  # last: the requests and tasks that ended above are counted
    state.logs.uninstall()
