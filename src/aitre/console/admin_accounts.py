"""Operator pages: users (create, edit, top up, adjust, password, ledger), groups, every user's
keys, and redeem codes. Each change goes through the admin API's route function."""

from __future__ import annotations

from typing import Any, get_args

from starlette.responses import Response

from aitre.accounts.redeem import CodeStatus
from aitre.accounts.repo import usd_to_units
from aitre.api.admin import groups as groups_api
from aitre.api.admin import keys as keys_api
from aitre.api.admin import redeem as redeem_api
from aitre.api.admin import users as users_api
from aitre.api.admin.groups import GroupCreateIn, GroupIn
from aitre.api.admin.keys import KeyCreateIn
from aitre.api.admin.redeem import CodesIn
from aitre.api.admin.schemas import KeyUpdateIn
from aitre.api.admin.users import BalanceChangeIn, PasswordIn, Role, UserCreateIn, UserUpdateIn
from aitre.console.admin_channels import parse_mapping
from aitre.console.common import keep, page_of, positive
from aitre.console.web import Ctx, Form
from aitre.errors import bad_request


def _id(ctx: Ctx) -> int:
    found = positive(ctx.param("id"), "id")
    assert found is not None
    return found


async def _group_names(ctx: Ctx) -> list[str]:
    names = [g.name for g in (await groups_api.list_groups(ctx.db)).data]
    return names if "default" in names else ["default", *names]


# --- users -------------------------------------------------------------------------------------
async def users(ctx: Ctx) -> Response:
    name = ctx.query.get("name", "").strip()[:64] or None
    group = ctx.query.get("group", "").strip()[:64] or None
    asked = ctx.query.get("role")
    role: Role | None = "admin" if asked == "admin" else "user" if asked == "user" else None
    page = page_of(ctx.query)
    found = await users_api.list_users(ctx.db, page, name=name, group=group, role=role)
    return ctx.render(
        "admin/users.html",
        title="Users",
        page=found,
        q=ctx.query,
        query=keep(ctx.query, "name", "role", "group"),
        groups=await _group_names(ctx),
    )


async def create_user(ctx: Ctx) -> Response:
    f = ctx.form
    body = UserCreateIn.model_validate(
        {"username": f.get("username").strip(), **f.values("role", "group", "usd")}
    )
    user = await users_api.create_user(ctx.db, body)
    if f.get("password"):
        await users_api.set_password(ctx.db, user.id, PasswordIn(password=f.get("password")))
    return ctx.redirect(f"/admin/users/{user.id}", ok=f"User {user.username} created.")


async def user(ctx: Ctx) -> Response:
    user_id = _id(ctx)
    found = await users_api.get_user(ctx.db, user_id)
    page = page_of(ctx.query, 20)
    ledger = await users_api.ledger(ctx.db, page, user_id)
    keys = await keys_api.list_keys(ctx.db, page_of({}, 100), user_id=user_id)
    return ctx.render(
        "admin/user.html",
        title=f"User {found.username}",
        u=found,
        ledger=ledger,
        keys=keys,
        groups=await _group_names(ctx),
    )


async def update_user(ctx: Ctx) -> Response:
    f = ctx.form
    body = UserUpdateIn.model_validate({**f.values("role", "group"), "enabled": f.has("enabled")})
    found = await users_api.update_user(ctx.db, _id(ctx), body)
    return ctx.redirect(f"/admin/users/{found.id}", ok=f"User {found.username} saved.")


async def change_balance(ctx: Ctx) -> Response:
    f = ctx.form
    user_id = _id(ctx)
    body = BalanceChangeIn.model_validate({**f.values("usd", "amount"), "note": f.get("note").strip()})
    if f.get("kind") == "adjust":
        done = await users_api.adjust(ctx.db, user_id, body)
    else:
        done = await users_api.topup(ctx.db, user_id, body)
    return ctx.redirect(
        f"/admin/users/{user_id}",
        ok=f"{done.entry.kind.capitalize()} of {done.entry.amount:,} units written; "
        f"{done.user.username} now has {done.user.quota:,} units.",
    )


async def set_password(ctx: Ctx) -> Response:
    user_id = _id(ctx)
    if ctx.form.get("remove"):
        found = await users_api.remove_password(ctx.db, user_id)
        return ctx.redirect(f"/admin/users/{user_id}", ok=f"{found.username} has no password now.")
    found = await users_api.set_password(ctx.db, user_id, PasswordIn(password=ctx.form.get("password")))
    return ctx.redirect(f"/admin/users/{user_id}", ok=f"Password of {found.username} set.")


# --- groups ------------------------------------------------------------------------------------
async def groups(ctx: Ctx) -> Response:
    rows = (await groups_api.list_groups(ctx.db)).data
    return ctx.render("admin/groups.html", title="Groups", rows=rows)


async def set_group(ctx: Ctx) -> Response:
    f = ctx.form
    name = f.get("name").strip()
    if not name:
        raise bad_request("Name the group.", param="name")
    fields = f.values("multiplier", "description")
    GroupCreateIn.model_validate({"name": name, **fields})  # the same bounds as creating one
    await groups_api.set_group(ctx.db, name, GroupIn.model_validate(fields), Response())
    return ctx.redirect("/admin/groups", ok=f"Group {name} saved.")


async def delete_group(ctx: Ctx) -> Response:
    name = ctx.form.get("name").strip()
    await groups_api.delete_group(ctx.db, name)
    return ctx.redirect("/admin/groups", ok=f"Group {name} deleted.")


# --- keys --------------------------------------------------------------------------------------
def key_limits(f: Form, per_usd: int) -> dict[str, Any]:
    """A key form's limits as the API takes them; blank fields are left out (no limit). The cap
    is asked in dollars."""
    out: dict[str, Any] = {"name": f.get("name").strip()}
    out.update(f.values("expires_at", "rpm", "tpm"))
    if f.get("quota_usd").strip():
        out["quota"] = usd_to_units(f.get("quota_usd").strip(), per_usd)
    for name in ("allowed_models", "allowed_ips"):
        items = [v.strip() for v in f.get(name).replace("\n", ",").split(",") if v.strip()]
        if items:
            out[name] = items
    return out


async def keys(ctx: Ctx, issued: Any = None) -> Response:
    user_id = positive(ctx.query.get("user_id"), "user_id")
    page = page_of(ctx.query)
    found = await keys_api.list_keys(ctx.db, page, user_id=user_id)
    return ctx.render(
        "admin/keys.html",
        title="Keys",
        page=found,
        q=ctx.query,
        query=keep(ctx.query, "user_id"),
        issued=issued,
    )


async def create_key(ctx: Ctx) -> Response:
    f = ctx.form
    user_id = positive(f.get("user_id"), "user_id")
    if user_id is None:
        raise bad_request("Choose the user the key acts for.", param="user_id")
    limits = key_limits(f, ctx.state.settings.quota_per_usd)
    mapping = parse_mapping(f.get("model_mapping"))
    body = KeyCreateIn.model_validate({**limits, "user_id": user_id, "model_mapping": mapping})
    issued = await keys_api.create_key(ctx.db, body)
    ctx.flash = {"kind": "ok", "text": f"Key {issued.name or issued.key_hint} created for {issued.username}."}
    return await keys(ctx, issued)


async def _set_key(ctx: Ctx, enabled: bool) -> Response:
    found = await keys_api.update_key(ctx.db, _id(ctx), KeyUpdateIn(enabled=enabled))
    state = "enabled" if enabled else "paused"
    return ctx.redirect(ctx.back("/admin/keys"), ok=f"Key {found.key_hint} {state}.")


async def enable_key(ctx: Ctx) -> Response:
    return await _set_key(ctx, True)


async def disable_key(ctx: Ctx) -> Response:
    return await _set_key(ctx, False)


async def revoke_key(ctx: Ctx) -> Response:
    found = await keys_api.revoke_key(ctx.db, _id(ctx))
    return ctx.redirect(ctx.back("/admin/keys"), ok=f"Key {found.key_hint} revoked.")


# --- redeem codes ------------------------------------------------------------------------------
async def codes(ctx: Ctx, issued: Any = None) -> Response:
    status = ctx.query.get("status")
    chosen: CodeStatus | None = next((s for s in get_args(CodeStatus) if s == status), None)
    page = page_of(ctx.query)
    found = await redeem_api.list_codes(ctx.db, page, status=chosen)
    return ctx.render(
        "admin/redeem.html",
        title="Redeem codes",
        page=found,
        status_filter=chosen or "",
        query=keep(ctx.query, "status"),
        issued=issued,
    )


async def create_codes(ctx: Ctx) -> Response:
    f = ctx.form
    body = CodesIn.model_validate({"name": f.get("name").strip(), **f.values("count", "usd", "expires_at")})
    made = await redeem_api.create_codes(ctx.db, body)
    ctx.flash = {"kind": "ok", "text": f"{len(made.data)} code{'s' if len(made.data) > 1 else ''} created."}
    return await codes(ctx, made.data)


async def delete_code(ctx: Ctx) -> Response:
    code_id = _id(ctx)
    await redeem_api.delete_code(ctx.db, code_id)
    return ctx.redirect("/admin/redeem", ok=f"Code #{code_id} deleted.")
