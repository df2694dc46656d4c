"""`aitre config ...`: the effective settings, and the reference table in docs/configuration.md."""

from __future__ import annotations

import typer

from aitre.cli.common import JsonOption, settings, table
from aitre.config import Settings

app = typer.Typer(no_args_is_help=True)

_SECRET_FIELDS = {"secret_key", "database_url", "redis_url", "metrics_token", "task_notify_secret"}


def reference_table() -> str:
    """The Markdown table of every option, its env var and default (docs/configuration.md)."""
    lines = ["| env var | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(empty)" if default in ("", None) else str(default)
        lines.append(f"| `AITRE_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(lines) + "\n"


@app.command("docs", help="Print the Markdown reference of every setting.")
def docs() -> None:
    print(reference_table(), end="")


@app.command("show", help="Print the effective settings (secrets masked).")
def show(as_json: JsonOption = False) -> None:
    s = settings()
    rows = []
    for name in Settings.model_fields:
        value = getattr(s, name)
        if name in _SECRET_FIELDS and value and "sqlite" not in str(value):
            value = "***"
        rows.append((f"AITRE_{name.upper()}", value))
    table("settings", ["env var", "value"], rows, as_json)
