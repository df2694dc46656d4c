"""The serving process: uvicorn running aitre with its settings, and nothing else imported.

`aitre serve` prepares the database and prints the first-start keys, then replaces itself with
this module (`exec`): the server then carries neither the CLI's libraries nor Alembic, nor the
heap they left behind (a leaner resident size under load).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from aitre.config import Settings
from aitre.observe.logs import log_config
from aitre.observe.metrics_dir import prepare_multiprocess_dir
from aitre.server_protocol import GatewayConfig, GatewayHttpProtocol

log = logging.getLogger("aitre")

# Files a process opens besides client and upstream connections: the database's pool (and
# SQLite's files), journals, media, logs, the listening socket, the event loop's own.
_FD_RESERVE = 128
_FD_TARGET = 1 << 20  # when the hard limit is "unlimited"


def _exit_cleanly_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the
    handlers that were there before it started. Make those no-ops, so that a clean shutdown
    ends with exit code 0 (what process managers expect), not "killed by SIGTERM"."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


async def _recover_journals(s: Settings) -> None:
    """With several workers, each journals into its own folder and none may replay or refund
    what another has in flight: the parent recovers the data folder's earlier processes once,
    before any worker starts."""
    from aitre.billing.instances import node_id
    from aitre.billing.recovery import recover_node
    from aitre.billing.writer import Quarantine
    from aitre.store.db import make_engine, make_sessionmaker

    engine = make_engine(s.resolved_database_url())
    try:
        node = node_id(s.data_dir)
        changes = await recover_node(
            make_sessionmaker(engine),
            s.data_dir / "journal",
            node,
            f"{node}/start-{os.getpid()}",
            Quarantine(s.data_dir / "quarantine"),
        )
        if s.redis_url and changes:
            await _apply_to_redis(s, changes)
    finally:
        await engine.dispose()


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one, as Go's runtime does (many systems start
    services at 1,024 with a far higher hard limit); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _FD_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return _FD_TARGET if soft == resource.RLIM_INFINITY else soft


def connection_cap(s: Settings, open_files: int) -> int:
    """Client connections a process may hold: the setting, or what the open-file limit leaves
    after upstream connections, Redis's and the reserve (at least 16)."""
    if s.max_connections > 0:
        return s.max_connections
    redis = s.redis_max_connections if s.redis_url else 0
    return max(16, open_files - s.pool_size - redis - _FD_RESERVE)


async def _apply_to_redis(s: Settings, changes: list[dict[str, Any]]) -> None:
    """Refunds made on start reach the balances in Redis (retried for a while: the database has
    them already)."""
    from aitre.billing.redis_bank import RedisBalances

    balances = RedisBalances(s.redis_url, s.resolved_database_url())
    try:
        amounts = balances.changes(changes)
        for attempt in range(10):
            try:
                await balances.add(amounts)
                return
            except Exception:
                if attempt == 9:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await balances.close()


def main() -> None:
    s = Settings()
    # Before anything imports prometheus-client (it picks how values are kept on import), and
    # before the workers start (they inherit the environment): every process of this server
    # keeps its metrics in this folder, and a scrape of any of them sums the folder.
    prepare_multiprocess_dir(s.data_dir / "prometheus")
    if s.workers > 1:
        asyncio.run(_recover_journals(s))
    _exit_cleanly_on_signals()
    open_files = raise_open_file_limit()
    cap = connection_cap(s, open_files)
    if cap + s.pool_size > open_files:
        log.warning(
            "AITRE_MAX_CONNECTIONS=%d and AITRE_POOL_SIZE=%d exceed the open-file limit (%d): past it, "
            "clients get no answer at all",
            cap,
            s.pool_size,
            open_files,
        )
    config = GatewayConfig(
        "aitre.app:create_app",
        header_timeout=s.header_timeout_seconds,
        max_connections=cap,
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers if s.workers > 1 else None,
        loop="uvloop",
        http=GatewayHttpProtocol,
        log_config=log_config(s.log_level, s.log_format),
        log_level=s.log_level,
        access_log=False,  # the front door writes its own access lines (AITRE_ACCESS_LOG)
        server_header=False,
        proxy_headers=False,  # the gateway reads X-Forwarded-For itself, when needed (security/forwarded.py)
        timeout_graceful_shutdown=int(s.shutdown_grace_seconds),
        timeout_keep_alive=int(s.keepalive_seconds),
        lifespan="on",
    )
    # What `uvicorn.run` does, with our own config class (which the workers get, pickled).
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    if config.workers <= 1 and not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


if __name__ == "__main__":
    main()
