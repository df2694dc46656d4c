"""Jinja2 templates (autoescaped) and the filters the pages use to show times, money and counts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from aitre import __version__

if TYPE_CHECKING:
    from aitre.console.principal import Principal


def when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def num(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def usd(units: int | None, per_usd: int) -> str:
    """Units as dollars, to the cent (more digits when it is less than a cent)."""
    if units is None:
        return "—"
    amount = Decimal(units) / Decimal(per_usd)
    if amount == 0:
        return "$0"
    text = f"{amount:,.2f}" if abs(amount) >= Decimal("0.01") else f"{amount:.6f}".rstrip("0")
    return ("-$" + text[1:]) if text.startswith("-") else "$" + text


class Renderer:
    def __init__(self, units_per_usd: int) -> None:
        self.env = Environment(
            loader=PackageLoader("aitre.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(when=when, num=num, usd=lambda units: usd(units, units_per_usd))
        self.env.globals["version"] = __version__

    def page(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(**values)

    def error(
        self, request: Request, status: int, message: str, who: Principal | None = None
    ) -> HTMLResponse:
        from aitre.api.common import app_state
        from aitre.console.web import SECURITY_HEADERS

        html = self.page(
            "error.html",
            request=request,
            who=who,
            flash=None,
            settings=app_state(request).settings,
            status=status,
            message=message,
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
