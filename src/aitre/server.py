"""The serving process: uvicorn running aitre with its settings, and nothing else imported.

`aitre serve` prepares the database and prints the first-start keys, then replaces itself with
this module (`exec`): the server then carries neither the CLI's libraries nor Alembic, nor the
heap they left behind (a leaner resident size under load).
"""

from __future__ import annotations

import signal

import uvicorn

from aitre.config import Settings


def _exit_cleanly_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the
    handlers that were there before it started. Make those no-ops, so that a clean shutdown
    ends with exit code 0 (what process managers expect), not "killed by SIGTERM"."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def main() -> None:
    s = Settings()
    _exit_cleanly_on_signals()
    uvicorn.run(
        "aitre.app:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers if s.workers > 1 else None,
        loop="uvloop",
        http="httptools",
        log_level=s.log_level,
        access_log=s.access_log,
        server_header=False,
        timeout_graceful_shutdown=int(s.shutdown_grace_seconds),
        lifespan="on",
    )


if __name__ == "__main__":
    main()
