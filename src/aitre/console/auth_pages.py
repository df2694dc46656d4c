"""Signing in (an API key, or a user name and password), signing out, and the front page.

The sign-in form has its own CSRF token before any session exists: a random value in a cookie
(HttpOnly, SameSite=Strict) that the form must send back (so another site cannot sign a visitor
in to an account of its choosing). Failed sign-ins are counted per client address and, for
passwords, per user (`sessions.record_failure`); past the limits the form answers 429 until the
window ends, before any key or password is checked.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aitre.accounts import passwords
from aitre.accounts.keys import parse_bearer
from aitre.accounts.policy import check_expiry, check_ip
from aitre.api.common import app_state, client_ip, header
from aitre.console import sessions
from aitre.console.principal import resolve
from aitre.console.render import Renderer
from aitre.console.web import (
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Ctx,
    Form,
    _same_origin,
    local_path,
    read_form,
    secure_cookies,
)
from aitre.errors import ApiError
from aitre.relay.cancel import ClientGone
from aitre.state import AppState
from aitre.store.models import User

SIGN_IN_COOKIE = "aitre_signin"
MAX_KEY_CHARS = 256
MAX_NAME_CHARS = 64


def _home(is_admin: bool) -> str:
    return "/admin" if is_admin else "/me"


async def front(request: Request) -> Response:
    state = app_state(request)
    try:
        who = await resolve(request, state, request.cookies.get(SESSION_COOKIE, ""))
    except ApiError:
        who = None
    target = "/sign-in" if who is None else _home(who.is_admin)
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _form_page(
    request: Request,
    state: AppState,
    *,
    status: int = 200,
    error: str = "",
    method: str = "key",
    username: str = "",
    retry_after: int = 0,
) -> Response:
    renderer: Renderer = request.app.state.console
    token = secrets.token_urlsafe(24)
    html = renderer.page(
        "sign_in.html",
        request=request,
        who=None,
        flash=None,
        settings=state.settings,
        signin_csrf=token,
        error=error,
        method=method,
        username=username,
        next=local_path(request.query_params.get("next"), ""),
    )
    headers = dict(SECURITY_HEADERS)
    if retry_after:
        headers["retry-after"] = str(retry_after)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path="/sign-in",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, state),
    )
    return response


async def sign_in_page(request: Request) -> Response:
    return _form_page(request, app_state(request))


async def sign_in(request: Request) -> Response:
    state = app_state(request)
    settings = state.settings
    if not _same_origin(request):
        return _form_page(request, state, status=403, error="This form was sent from another site.")
    try:
        form = await read_form(request, 16 * 1024)
    except ApiError as exc:
        return _form_page(request, state, status=exc.status, error=exc.message)
    except ClientGone:
        return Response(status_code=400)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    sent = form.get("csrf")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _form_page(
            request, state, status=403, error="The form's security token is missing or stale; try again."
        )
    method = "password" if form.get("method") == "password" else "key"
    username = form.get("username").strip()[:MAX_NAME_CHARS]
    ip = client_ip(request)
    window = int(settings.console_failure_window_minutes * 60_000)
    async with state.sessions() as db:
        wait = await sessions.blocked_for(
            db, sessions.ip_scope(ip), settings.console_max_failures_per_ip, window
        )
        if wait:
            return _too_many(request, state, wait, method, username)
        outcome = await _check(request, state, form, method, username)
        if isinstance(outcome, Failure):
            if outcome.blocked:
                return _too_many(request, state, outcome.blocked, method, username)
            await sessions.record_failure(db, outcome.scopes, window)
            return _form_page(
                request, state, status=401, error=outcome.message, method=method, username=username
            )
        uid, token_id = outcome
        if token_id is None:
            await sessions.clear(db, sessions.user_scope(uid))
        agent = header(request, b"user-agent") or ""
        token, _ = await sessions.create(db, settings, uid, token_id, ip, agent)
        await db.commit()
        role = await db.scalar(select(User.role).where(User.id == uid))
    target = local_path(form.get("next"), _home(role == "admin"))
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, state),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@dataclass(frozen=True, slots=True)
class Failure:
    scopes: list[str]  # to count the failure against
    message: str
    blocked: int = 0  # seconds until the user's password sign-ins are allowed again


async def _check(
    request: Request, state: AppState, form: Form, method: str, username: str
) -> tuple[int, int | None] | Failure:
    """(user id, key id or None) of a good sign-in; else what to count and say."""
    ip = client_ip(request)
    ip_scope = sessions.ip_scope(ip)
    if method == "key":
        text = form.get("key").strip()
        key = parse_bearer("Bearer " + text[:MAX_KEY_CHARS]) if text and len(text) <= MAX_KEY_CHARS else None
        caller = await state.catalog.keys.resolve(key) if key else None
        if caller is None:
            return Failure([ip_scope], "That API key is not valid.")
        try:
            check_expiry(caller)
            check_ip(caller, ip)
        except ApiError as exc:
            return Failure([ip_scope], exc.message)
        return caller.user_id, caller.token_id
    password = form.get("password")
    settings = state.settings
    window = int(settings.console_failure_window_minutes * 60_000)
    async with state.sessions() as db:
        user = await db.scalar(select(User).where(User.username == username)) if username else None
        if user is not None:
            blocked = await sessions.blocked_for(
                db, sessions.user_scope(user.id), settings.console_max_failures_per_user, window
            )
            if blocked:
                return Failure([], "", blocked)
    ok = await passwords.verify(user.password_hash if user is not None else "", password)
    if user is None or not ok or not user.enabled:
        scopes = [ip_scope] + ([sessions.user_scope(user.id)] if user is not None else [])
        return Failure(scopes, "That user name and password do not match.")
    return user.id, None


def _too_many(request: Request, state: AppState, wait: int, method: str, username: str) -> Response:
    minutes = max(1, (wait + 59) // 60)
    return _form_page(
        request,
        state,
        status=429,
        error=f"Too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        method=method,
        username=username,
        retry_after=wait,
    )


async def sign_out(ctx: Ctx) -> Response:
    async with ctx.state.sessions() as db:
        await sessions.end(db, ctx.who.session_id)
    response = RedirectResponse("/sign-in", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
