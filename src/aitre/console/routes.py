"""The console's routes, added to the gateway's FastAPI application (the one that serves the
admin and user APIs): no second server, and no route of the OpenAPI document."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from aitre.config import Settings
from aitre.console import admin_accounts, admin_channels, admin_tasks, admin_usage, auth_pages, me_pages
from aitre.console.render import Renderer
from aitre.console.web import Handler, guarded

# (path, methods, handler, operators only)
PAGES: list[tuple[str, tuple[str, ...], Handler, bool]] = [
    ("/sign-out", ("POST",), auth_pages.sign_out, False),
    # --- operator pages
    ("/admin", ("GET",), admin_usage.dashboard, True),
    ("/admin/logs", ("GET",), admin_usage.logs, True),
    ("/admin/logs.csv", ("GET",), admin_usage.logs_csv, True),
    ("/admin/channels", ("GET",), admin_channels.channels, True),
    ("/admin/channels", ("POST",), admin_channels.create, True),
    ("/admin/channels/{id}", ("GET",), admin_channels.channel, True),
    ("/admin/channels/{id}", ("POST",), admin_channels.update, True),
    ("/admin/channels/{id}/probe", ("POST",), admin_channels.probe, True),
    ("/admin/channels/{id}/balance", ("POST",), admin_channels.balance, True),
    ("/admin/channels/{id}/enable", ("POST",), admin_channels.enable, True),
    ("/admin/channels/{id}/disable", ("POST",), admin_channels.disable, True),
    ("/admin/channels/{id}/delete", ("POST",), admin_channels.delete, True),
    ("/admin/prices", ("GET",), admin_channels.prices, True),
    ("/admin/prices", ("POST",), admin_channels.set_price, True),
    ("/admin/prices/delete", ("POST",), admin_channels.delete_price, True),
    ("/admin/settings", ("GET",), admin_channels.settings, True),
    ("/admin/settings", ("POST",), admin_channels.change_settings, True),
    ("/admin/users", ("GET",), admin_accounts.users, True),
    ("/admin/users", ("POST",), admin_accounts.create_user, True),
    ("/admin/users/{id}", ("GET",), admin_accounts.user, True),
    ("/admin/users/{id}", ("POST",), admin_accounts.update_user, True),
    ("/admin/users/{id}/balance", ("POST",), admin_accounts.change_balance, True),
    ("/admin/users/{id}/password", ("POST",), admin_accounts.set_password, True),
    ("/admin/groups", ("GET",), admin_accounts.groups, True),
    ("/admin/groups", ("POST",), admin_accounts.set_group, True),
    ("/admin/groups/delete", ("POST",), admin_accounts.delete_group, True),
    ("/admin/keys", ("GET",), admin_accounts.keys, True),
    ("/admin/keys", ("POST",), admin_accounts.create_key, True),
    ("/admin/keys/{id}/enable", ("POST",), admin_accounts.enable_key, True),
    ("/admin/keys/{id}/disable", ("POST",), admin_accounts.disable_key, True),
    ("/admin/keys/{id}/revoke", ("POST",), admin_accounts.revoke_key, True),
    ("/admin/redeem", ("GET",), admin_accounts.codes, True),
    ("/admin/redeem", ("POST",), admin_accounts.create_codes, True),
    ("/admin/redeem/{id}/delete", ("POST",), admin_accounts.delete_code, True),
    ("/admin/tasks", ("GET",), admin_tasks.tasks, True),
    ("/admin/tasks/{id}", ("GET",), admin_tasks.task, True),
    ("/admin/tasks/{id}/cancel", ("POST",), admin_tasks.cancel, True),
    ("/admin/deliveries/{id}/retry", ("POST",), admin_tasks.retry_delivery, True),
    # --- every signed-in user's own pages
    ("/me", ("GET",), me_pages.overview, False),
    ("/me/keys", ("GET",), me_pages.keys, False),
    ("/me/keys", ("POST",), me_pages.create_key, False),
    ("/me/keys/{id}/revoke", ("POST",), me_pages.revoke_key, False),
    ("/me/playground-key", ("POST",), me_pages.playground_key, False),
    ("/me/ledger", ("GET",), me_pages.ledger, False),
    ("/me/logs", ("GET",), me_pages.logs, False),
    ("/me/redeem", ("GET",), me_pages.redeem_page, False),
    ("/me/redeem", ("POST",), me_pages.redeem, False),
    ("/me/password", ("GET",), me_pages.password_page, False),
    ("/me/password", ("POST",), me_pages.set_password, False),
    ("/me/playground", ("GET",), me_pages.playground, False),
]


def install(app: FastAPI, settings: Settings) -> None:
    app.state.console = Renderer(settings.quota_per_usd)
    app.add_route("/", auth_pages.front, methods=["GET"], include_in_schema=False)
    app.add_route("/sign-in", auth_pages.sign_in_page, methods=["GET"], include_in_schema=False)
    app.add_route("/sign-in", auth_pages.sign_in, methods=["POST"], include_in_schema=False)
    for path, methods, handler, admin in PAGES:
        app.add_route(path, guarded(handler, admin=admin), methods=list(methods), include_in_schema=False)
    app.mount("/static", StaticFiles(packages=[("aitre.console", "static")]), name="console-static")
