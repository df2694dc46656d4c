"""Every signed-in user's own pages: balance and usage charts, keys (create, copy once, revoke),
ledger, requests, redeeming a code, the console password, and the playground.

They call the user API's route functions with the visitor's rights: their own user id, and key
management only for a session that may manage keys (a password, or a key without limits: see
`principal`). The playground runs in the browser and calls `/v1/...` and `/mj/...` with a key.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from aitre.accounts import passwords, repo
from aitre.api.admin import keys as admin_keys
from aitre.api.admin.schemas import KeyLimitsIn
from aitre.api.user import account as account_api
from aitre.api.user import usage as usage_api
from aitre.api.user.account import RedeemIn
from aitre.console.admin_accounts import key_limits
from aitre.console.admin_usage import log_filter
from aitre.console.common import RANGES, chart, keep, page_of, positive
from aitre.console.web import SECURITY_HEADERS, Ctx
from aitre.errors import ApiError

USER_LOG_FILTERS = ("token_id", "model", "status", "since", "until")


def _may_manage_keys(ctx: Ctx) -> None:
    if not ctx.who.may_manage_keys:
        raise ApiError(
            403,
            "You signed in with a key that has limits: it may not manage keys or set a password. "
            "Sign in with your password or a key without limits.",
            code="key_has_limits",
        )


async def overview(ctx: Ctx) -> Response:
    chosen = ctx.query.get("range", "7d")
    if chosen not in RANGES:
        chosen = "7d"
    balance = await account_api.balance(ctx.db, ctx.caller)
    filt = log_filter(ctx, operator=False, default_since=RANGES[chosen])
    dash = await usage_api.usage_dashboard(ctx.db, ctx.caller, filt, "auto", 10)
    return ctx.render(
        "me/overview.html",
        title="My account",
        balance=balance,
        dash=dash,
        charts=chart(dash, ctx.state.settings.quota_per_usd),
        chosen=chosen,
    )


async def keys(ctx: Ctx, issued: object = None) -> Response:
    _may_manage_keys(ctx)
    page = page_of(ctx.query)
    async with ctx.db.read() as s:
        rows, total = await repo.list_keys(
            s, user_id=ctx.who.user_id, offset=page.offset, limit=page.per_page
        )
    from aitre.api.admin.schemas import KeyOut

    found = page.of([KeyOut.of(t, u) for t, u in rows], total)
    return ctx.render("me/keys.html", title="My keys", page=found, issued=issued)


async def create_key(ctx: Ctx) -> Response:
    _may_manage_keys(ctx)
    body = KeyLimitsIn.model_validate(key_limits(ctx.form, ctx.state.settings.quota_per_usd))
    issued = await admin_keys.issue(ctx.db, ctx.who.user_id, body)
    ctx.flash = {"kind": "ok", "text": f"Key {issued.name or issued.key_hint} created."}
    return await keys(ctx, issued)


async def revoke_key(ctx: Ctx) -> Response:
    _may_manage_keys(ctx)
    key_id = positive(ctx.param("id"), "id")
    assert key_id is not None
    found = await admin_keys.revoke(ctx.db, key_id, user_id=ctx.who.user_id)  # another's: 404
    return ctx.redirect("/me/keys", ok=f"Key {found.key_hint} revoked.")


async def playground_key(ctx: Ctx) -> Response:
    """A key for the playground (JSON: the page keeps it in the tab's session storage)."""
    _may_manage_keys(ctx)
    body = KeyLimitsIn(name="console playground")
    issued = await admin_keys.issue(ctx.db, ctx.who.user_id, body)
    return Response(
        orjson.dumps({"key": issued.key, "key_hint": issued.key_hint}),
        media_type="application/json",
        headers=SECURITY_HEADERS,
    )


async def ledger(ctx: Ctx) -> Response:
    page = page_of(ctx.query)
    found = await account_api.ledger(ctx.db, ctx.caller, page)
    return ctx.render("me/ledger.html", title="My ledger", page=found)


async def logs(ctx: Ctx) -> Response:
    page = page_of(ctx.query)
    filt = log_filter(ctx, operator=False)
    found = await usage_api.list_logs(ctx.db, ctx.caller, filt, page)
    return ctx.render(
        "me/logs.html", title="My requests", page=found, q=ctx.query, query=keep(ctx.query, *USER_LOG_FILTERS)
    )


async def redeem_page(ctx: Ctx) -> Response:
    balance = await account_api.balance(ctx.db, ctx.caller)
    return ctx.render("me/redeem.html", title="Redeem a code", balance=balance)


async def redeem(ctx: Ctx) -> Response:
    done = await account_api.redeem_code(
        ctx.db, ctx.caller, RedeemIn(code=ctx.form.get("code").strip()[:128])
    )
    return ctx.redirect(
        "/me/redeem", ok=f"Added ${done.added_usd}; your balance is ${done.balance.quota_usd}."
    )


async def password_page(ctx: Ctx) -> Response:
    return ctx.render("me/password.html", title="Console password")


async def set_password(ctx: Ctx) -> Response:
    _may_manage_keys(ctx)
    f = ctx.form
    new = f.get("password")
    if new != f.get("confirm"):
        return ctx.redirect("/me/password", error="The two new passwords differ.")
    async with ctx.db.write() as s:
        user = await repo.get_user(s, ctx.who.user_id)
        # Signed in with the password: the old one is asked again (a session left open is not
        # enough to take the account over). With a key without limits, the key is proof enough.
        if not ctx.who.via_key and not await passwords.verify(user.password_hash, f.get("current")):
            raise ApiError(400, "The current password is wrong.", param="current")
        await passwords.set_password(s, user, new, keep_session=ctx.who.session_id)
    return ctx.redirect("/me/password", ok="Password set. Your other console sessions were signed out.")


async def playground(ctx: Ctx) -> Response:
    return ctx.render("me/playground.html", title="Playground", may_make_key=ctx.who.may_manage_keys)
