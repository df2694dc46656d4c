"""`aitre serve`, `aitre simulator`, `aitre migrate`."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from typing import Annotated

import typer
from rich.panel import Panel

from aitre.cli.common import console, settings
from aitre.store.db import make_engine
from aitre.store.migrate import upgrade_to_head


def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address [default: AITRE_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: AITRE_PORT or 3000].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [default: AITRE_WORKERS or 1].")
    ] = None,
) -> None:
    from aitre.app import prepare_database

    # Options win over the environment; workers re-read settings from it, so write them there.
    for name, value in (("AITRE_HOST", host), ("AITRE_PORT", port), ("AITRE_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    s = settings()
    keys = asyncio.run(prepare_database(s))
    base = s.resolved_public_url()
    if keys is not None:
        body = (
            f"[bold]Admin key:[/bold] {keys.admin_key}\n[bold]User key:[/bold]  {keys.user_key}\n\n"
            f"Keys are stored hashed and shown only now"
            + (f" (also in {s.data_dir / 'initial-keys.env'})." if s.write_initial_keys else ".")
            + f"\nTry: curl {base}/v1/chat/completions -H 'Authorization: Bearer {keys.user_key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say this is a test"}]}\''
        )
        console.print(Panel(body, title="aitre first start", expand=False))
    console.print(f"aitre listening on {base} (OpenAI base URL: {base}/v1)")
    if s.console_enabled:
        console.print(f"web console: {base}/ (sign in with a key or a user name and password)")
    sys.stdout.flush()
    # Become the server (same pid, so signals and process managers see no difference). Two
    # malloc arenas instead of one per thread (database, executor): the same speed, a smaller
    # resident size.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.execv(sys.executable, [sys.executable, "-m", "aitre.server"])


def simulator(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 3900,
    key: Annotated[
        str,
        typer.Option(
            help="The key every request must carry (bearer; x-key for BFL); several: comma-separated "
            "[default: a new one, printed].",
            envvar="AITRE_SIMULATOR_KEY",
        ),
    ] = "",
) -> None:
    import uvicorn

    from aitre.simulator.app import create_simulator_app

    # Never open: its control routes can fail or hang every request and list every request's path.
    keys = tuple(k.strip() for k in key.split(",") if k.strip()) or ("sk-sim-" + secrets.token_urlsafe(24),)
    app = create_simulator_app(keys=lambda: keys)
    console.print(
        f"aitre simulator listening on http://{host}:{port} (OpenAI base URL: http://{host}:{port}/v1)"
    )
    console.print(f"key: {', '.join(keys)}", highlight=False, soft_wrap=True)
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def migrate() -> None:
    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> None:
        engine = make_engine(s.resolved_database_url())
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print("database is at the newest schema")
