"""The `aitre` command."""

from __future__ import annotations

import typer

from aitre.cli import apply, channels, config, groups, logs, prices, redeem, serve, tasks, tokens, users

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
app.command("apply", help="Add or update channels, prices and groups from a TOML or JSON file.")(apply.apply)
app.add_typer(
    channels.app, name="channel", help="Upstream channels: add, list, update, delete, enable, disable."
)
app.add_typer(tokens.app, name="token", help="API keys with limits: create, list, update, revoke.")
app.add_typer(users.app, name="user", help="Users: create, list, update, topup, enable, disable, ledger.")
app.add_typer(groups.app, name="group", help="Pricing groups: set, list, delete.")
app.add_typer(prices.app, name="price", help="Model prices in USD: set, list, delete.")
app.add_typer(redeem.app, name="redeem", help="Redeem codes that add quota: create, list, delete.")
app.add_typer(
    tasks.app, name="task", help="Tasks (MJ, videos): list, show, cancel; retry a failed notifyHook call."
)
app.command("logs", help="Usage logs, filtered and paged, or exported whole with --csv.")(logs.logs)
app.command("usage", help="Usage summary by day and by model.")(logs.usage)
app.add_typer(config.app, name="config", help="Settings: show the effective ones, print their reference.")


def main() -> None:
    app()
