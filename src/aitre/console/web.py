"""What every console page goes through: who is signed in, the role the page needs, the CSRF
token on every change, a bounded form body, and rendering (templates, flash messages, the
security headers).

A page is `guarded(handler, admin=...)`. The guard runs before the handler and before a byte of
the body is read: an anonymous visitor is sent to the sign-in page, a user on an operator page
gets 403, and a POST whose `csrf` field (or `X-CSRF-Token` header) is not the session's, or whose
`Origin` is another site's, gets 403 and changes nothing.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aitre.accounts.auth import Caller
from aitre.api.common import app_state, header, read_body
from aitre.api.deps import Db, to_api_error
from aitre.console.principal import Principal, resolve
from aitre.console.render import Renderer
from aitre.errors import ApiError, DomainError
from aitre.relay.cancel import ClientGone
from aitre.state import AppState

SESSION_COOKIE = "aitre_session"
FLASH_COOKIE = "aitre_flash"
MAX_FIELDS = 1000

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def secure_cookies(request: Request, state: AppState) -> bool:
    mode = state.settings.console_cookie_secure
    if mode != "auto":
        return mode == "always"
    if request.url.scheme == "https":
        return True
    proto = header(request, b"x-forwarded-proto")
    peer = request.scope.get("client")
    return bool(
        proto and peer and state.forwarded.trusts(str(peer[0])) and proto.split(",")[0].strip() == "https"
    )


def local_path(value: str | None, default: str) -> str:
    """`value` if it is a path on this site (no scheme, no host, no `//`), else `default`: a
    `next` or `back` that a link chose must not send the visitor elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


@dataclass
class Form:
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        for k, v in self.pairs:
            if k == name:
                return v
        return default

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)

    def values(self, *names: str) -> dict[str, str]:
        """The named fields that are not blank (a blank field means "not given")."""
        return {n: v.strip() for n in names if (v := self.get(n)).strip()}


async def read_form(request: Request, limit: int) -> Form:
    kind = (header(request, b"content-type") or "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if not body:
        return Form()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "Console forms are sent as application/x-www-form-urlencoded.", code="bad_form")
    try:
        text = body.decode()
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "That form could not be read.", code="bad_form") from None
    return Form(pairs)


@dataclass
class Ctx:
    """One console request: its visitor, form, and the ways to answer."""

    request: Request
    state: AppState
    who: Principal
    form: Form
    renderer: Renderer
    flash: dict[str, str] | None = None

    @property
    def db(self) -> Db:
        return Db(self.state)

    @property
    def caller(self) -> Caller:
        return self.who.caller

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        html = self.renderer.page(
            template,
            request=self.request,
            who=self.who,
            flash=self.flash,
            settings=self.state.settings,
            now_ms=int(time.time() * 1000),
            **values,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if self.flash is not None:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def redirect(self, path: str, *, ok: str | None = None, error: str | None = None) -> Response:
        response = RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
        if ok or error:
            value = orjson.dumps({"kind": "ok" if ok else "error", "text": ok or error}).decode()
            response.set_cookie(
                FLASH_COOKIE,
                quote(value),
                max_age=60,
                path="/",
                httponly=True,
                samesite="lax",
                secure=secure_cookies(self.request, self.state),
            )
        return response

    def back(self, default: str | None = None) -> str:
        return local_path(self.form.get("back"), default or self.request.url.path)


Handler = Callable[[Ctx], Awaitable[Response]]


def _flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        from urllib.parse import unquote

        data = orjson.loads(unquote(raw))
    except (orjson.JSONDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in ("ok", "error"):
        return None
    return {"kind": str(data["kind"]), "text": str(data.get("text", ""))[:2000]}


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from (`Origin`); it must be this site: the host the
    request was sent to, the one a trusted proxy forwarded for (`X-Forwarded-Host`), or the
    public URL's. (Requests without it, from tools, still need the CSRF token.)"""
    origin = header(request, b"origin")
    if origin is None or origin == "null":
        return origin is None
    state = app_state(request)
    ours = {header(request, b"host") or ""}
    peer = request.scope.get("client")
    forwarded = header(request, b"x-forwarded-host")
    if forwarded and peer and state.forwarded.trusts(str(peer[0])):
        ours.add(forwarded.split(",")[0].strip())
    if state.settings.public_url:
        ours.add(urlsplit(state.settings.public_url).netloc)
    return urlsplit(origin).netloc in ours


def error_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if not errors:
            return 400, "invalid input"
        where = ".".join(str(p) for p in errors[0]["loc"])
        return 400, f"{where + ': ' if where else ''}{errors[0]['msg']}"
    api = to_api_error(exc)
    return api.status, api.message


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/sign-in?next=" + quote(target, safe="")
    if header(request, b"hx-request"):
        return Response(status_code=401, headers={"hx-redirect": location, **SECURITY_HEADERS})
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def guarded(handler: Handler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state = app_state(request)
        renderer: Renderer = request.app.state.console
        try:
            who = await resolve(request, state, request.cookies.get(SESSION_COOKIE, ""))
        except ApiError as exc:  # signed in with a key that may not be used from here
            return renderer.error(request, exc.status, exc.message)
        if who is None:
            return sign_in_redirect(request)
        if admin and not who.is_admin:
            return renderer.error(
                request, 403, "This page is for operators (users with the admin role).", who
            )
        form = Form()
        if request.method == "POST":
            if not _same_origin(request):
                return renderer.error(request, 403, "This form was sent from another site.", who)
            try:
                form = await read_form(request, state.settings.api_max_body_bytes)
            except ApiError as exc:
                return renderer.error(request, exc.status, exc.message, who)
            except ClientGone:
                return Response(status_code=400)
            sent = form.get("csrf") or header(request, b"x-csrf-token") or ""
            if not hmac.compare_digest(sent.encode(), who.csrf.encode()):
                return renderer.error(
                    request, 403, "The form's security token is missing or stale; reload the page.", who
                )
        ctx = Ctx(request, state, who, form, renderer, _flash(request))
        try:
            response = await handler(ctx)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response
        except (ApiError, DomainError, ValidationError, IntegrityError, ValueError) as exc:
            status, message = error_message(exc)
            if request.method == "POST" and status not in (401, 403, 404):
                return ctx.redirect(ctx.back(), error=message)
            return renderer.error(request, status, message, who)

    return endpoint
