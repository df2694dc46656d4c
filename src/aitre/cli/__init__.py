"""The `aitre` command."""

from __future__ import annotations

import typer

from aitre.cli import channels, config, prices, serve, tokens, users

app = typer.Typer(
    name="aitre",
    help="aitre: a self-hosted AI API gateway. One endpoint and one key for chat, images, audio, "
    "embeddings, MidJourney and video.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve", help="Run the gateway (migrates the database and bootstraps on first start).")(
    serve.serve
)
app.command("simulator", help="Run the simulator: a fake upstream with fault injection.")(serve.simulator)
app.command("migrate", help="Apply database migrations and exit.")(serve.migrate)
app.add_typer(channels.app, name="channel", help="Upstream channels: add, list, enable, disable.")
app.add_typer(tokens.app, name="token", help="API keys: create, list, revoke.")
app.add_typer(users.app, name="user", help="Users: create, list.")
app.add_typer(prices.app, name="price", help="Model prices in USD: set, list, delete.")
app.add_typer(config.app, name="config", help="Settings: show the effective ones, print their reference.")


def main() -> None:
    app()
