"""Driving the web console over plain HTTP as a browser would: sign in, read pages, send forms
(with the page's CSRF token, or without it to see it refused)."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx

from aitre.console.routes import PAGES
from tests.support.processes import Gateway

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FLASH = re.compile(r'class="flash (ok|error)"[^>]*>([^<]*)<')


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Visitor:
    """One browser: its own cookies. Redirects are not followed (tests look at them)."""

    def __init__(self, gw: Gateway, **headers: str) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.url, timeout=30, headers=headers)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Visitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sign_in_form(self, **fields: str) -> httpx.Response:
        page = self.http.get("/sign-in")
        assert page.status_code == 200, page.text
        token = CSRF.search(page.text)
        assert token is not None
        return self.http.post("/sign-in", data={"csrf": token.group(1), **fields})

    def sign_in(self, key: str | None = None, *, username: str = "", password: str = "") -> Visitor:
        if key is not None:
            resp = self.sign_in_form(method="key", key=key)
        else:
            resp = self.sign_in_form(method="password", username=username, password=password)
        assert resp.status_code == 303, (resp.status_code, flash_of(resp))
        self.refresh_csrf()
        return self

    def refresh_csrf(self) -> None:
        page = self.http.get("/me/redeem")
        assert page.status_code == 200, page.status_code
        found = CSRF.search(page.text)
        assert found is not None
        self.csrf = found.group(1)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body["csrf"] = self.csrf
        return self.http.post(path, data=body, **kw)

    def flash(self) -> tuple[str, str] | None:
        """The message the next page shows (after a redirect), read from the page."""
        page = self.http.get("/me/redeem")
        return flash_of(page)


def flash_of(resp: httpx.Response) -> tuple[str, str] | None:
    found = FLASH.search(resp.text)
    return (found.group(1), html.unescape(found.group(2))) if found else None


def pages(method: str, admin: bool | None = None) -> list[str]:
    """Every console path of `method` (ids as 1), operator pages only, user pages only, or all."""
    out = []
    for path, methods, _, is_admin in PAGES:
        if method in methods and (admin is None or is_admin == admin):
            out.append(path.replace("{id}", "1"))
    return out


def admin_api(gw: Gateway, method: str, path: str, **kw: Any) -> Any:
    resp = httpx.request(
        method,
        gw.url + "/api/admin" + path,
        headers={"Authorization": f"Bearer {gw.admin_key}"},
        timeout=30,
        **kw,
    )
    assert resp.status_code < 300, resp.text
    return resp.json()


def new_user(gw: Gateway, usd: str = "10", **fields: Any) -> tuple[dict[str, Any], str]:
    """A user with `usd` and a key without limits: (the user, the key)."""
    user = admin_api(gw, "POST", "/users", json={"username": unique("u"), "usd": usd, **fields})
    key = admin_api(gw, "POST", "/keys", json={"user_id": user["id"]})["key"]
    return user, key
