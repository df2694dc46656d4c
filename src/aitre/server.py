"""The serving process: uvicorn running aitre with its settings, and nothing else imported.

`aitre serve` prepares the database and prints the first-start keys, then replaces itself with
this module (`exec`): the server then carries neither the CLI's libraries nor Alembic, nor the
heap they left behind (a leaner resident size under load).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import uvicorn

from aitre.config import Settings
from aitre.server_protocol import GatewayHttpProtocol


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
    if s.workers > 1:
        asyncio.run(_recover_journals(s))
    _exit_cleanly_on_signals()
    uvicorn.run(
        "aitre.app:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers if s.workers > 1 else None,
        loop="uvloop",
        http=GatewayHttpProtocol,
        log_level=s.log_level,
        access_log=s.access_log,
        server_header=False,
        proxy_headers=False,  # the gateway reads X-Forwarded-For itself, when needed (security/forwarded.py)
        timeout_graceful_shutdown=int(s.shutdown_grace_seconds),
        timeout_keep_alive=int(s.keepalive_seconds),
        lifespan="on",
    )


if __name__ == "__main__":
    main()
