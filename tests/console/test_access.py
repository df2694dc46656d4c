"""Who may see and change what: every console page refuses an anonymous visitor (to the sign-in
page, nothing changed), a user on operator pages (403), and every form refuses a request without
the session's CSRF token or from another site (403, nothing changed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.console.kit import Visitor, admin_api, new_user, pages, unique
from tests.support.processes import Gateway


@pytest.fixture(scope="module")
def admin(gw: Gateway) -> Iterator[Visitor]:
    with Visitor(gw) as v:
        yield v.sign_in(gw.admin_key)


@pytest.fixture(scope="module")
def user(gw: Gateway) -> Iterator[Visitor]:
    _, key = new_user(gw)
    with Visitor(gw) as v:
        yield v.sign_in(key)


def test_front_page_sends_visitors_to_sign_in_and_members_home(
    gw: Gateway, admin: Visitor, user: Visitor
) -> None:
    with Visitor(gw) as anon:
        assert anon.get("/").headers["location"] == "/sign-in"
    assert admin.get("/").headers["location"] == "/admin"
    assert user.get("/").headers["location"] == "/me"


@pytest.mark.parametrize("path", pages("GET"))
def test_anonymous_visitor_is_sent_to_sign_in(gw: Gateway, path: str) -> None:
    with Visitor(gw) as anon:
        resp = anon.get(path)
        assert resp.status_code == 303
        assert resp.headers["location"].startswith("/sign-in?next=")
        # htmx asks for a redirect header instead of following one
        resp = anon.get(path, headers={"HX-Request": "true"})
        assert resp.status_code == 401 and resp.headers["hx-redirect"].startswith("/sign-in")


@pytest.mark.parametrize("path", pages("POST"))
def test_anonymous_form_is_refused(gw: Gateway, path: str) -> None:
    with Visitor(gw) as anon:
        resp = anon.post(path, {"name": "x"}, csrf=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/sign-in")


@pytest.mark.parametrize("path", pages("GET", admin=True))
def test_user_may_not_open_operator_pages(user: Visitor, path: str) -> None:
    resp = user.get(path)
    assert resp.status_code == 403, path
    assert "for operators" in resp.text


@pytest.mark.parametrize("path", pages("POST", admin=True))
def test_user_may_not_send_operator_forms(gw: Gateway, user: Visitor, path: str) -> None:
    resp = user.post(path, {"name": unique("g"), "username": unique("u"), "usd": "5"})
    assert resp.status_code == 403, path


@pytest.mark.parametrize("path", pages("GET", admin=False))
def test_user_opens_own_pages(user: Visitor, path: str) -> None:
    assert user.get(path).status_code == 200, path


@pytest.mark.parametrize("path", pages("GET", admin=True))
def test_admin_opens_operator_pages(admin: Visitor, path: str) -> None:
    resp = admin.get(path)
    assert resp.status_code in (200, 404), path  # 404: no record 1 of that kind (a task)
    assert resp.headers["content-security-policy"].startswith("default-src 'self'")
    assert resp.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", pages("POST"))
def test_form_without_csrf_token_is_refused(admin: Visitor, path: str) -> None:
    resp = admin.post(path, {"name": unique("g"), "username": unique("u"), "usd": "5"}, csrf=False)
    assert resp.status_code == 403, path
    assert "security token" in resp.text
    resp = admin.post(path, {"csrf": "forged", "name": unique("g")}, csrf=False)
    assert resp.status_code == 403, path


def test_refused_forms_change_nothing(gw: Gateway, admin: Visitor, user: Visitor) -> None:
    name = unique("u")
    assert admin.post("/admin/users", {"username": name, "usd": "5"}, csrf=False).status_code == 403
    assert user.post("/admin/users", {"username": name, "usd": "5"}).status_code == 403
    with Visitor(gw) as anon:
        assert anon.post("/admin/users", {"username": name, "usd": "5"}, csrf=False).status_code == 303
    assert admin_api(gw, "GET", f"/users?name={name}")["total"] == 0
    # the same form with the token works
    assert admin.post("/admin/users", {"username": name, "usd": "5"}).status_code == 303
    assert admin_api(gw, "GET", f"/users?name={name}")["total"] == 1


def test_form_from_another_site_is_refused(gw: Gateway, admin: Visitor) -> None:
    name = unique("g")
    resp = admin.post("/admin/groups", {"name": name}, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and "another site" in resp.text
    assert name not in {g["name"] for g in admin_api(gw, "GET", "/groups")["data"]}
    ok = admin.post("/admin/groups", {"name": name}, headers={"Origin": gw.url})
    assert ok.status_code == 303
    # behind a trusted proxy (127.0.0.1 is one by default) the public host is this site too
    proxied = {"Origin": "https://console.example", "X-Forwarded-Host": "console.example"}
    assert admin.post("/admin/groups", {"name": name + "-p"}, headers=proxied).status_code == 303


def test_session_cookie_is_http_only_and_same_site(gw: Gateway) -> None:
    with Visitor(gw) as v:
        resp = v.sign_in_form(method="key", key=gw.admin_key)
        cookie = resp.headers["set-cookie"].lower()
        assert "aitre_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # plain HTTP from a client that is not a trusted proxy


def test_cookie_is_secure_behind_a_trusted_https_proxy(gw: Gateway) -> None:
    # 127.0.0.1 is a trusted proxy by default (AITRE_FORWARDED_ALLOW_IPS)
    with Visitor(gw, **{"X-Forwarded-Proto": "https"}) as v:
        cookie = v.sign_in_form(method="key", key=gw.admin_key).headers["set-cookie"].lower()
        assert "; secure" in cookie


def test_sign_in_form_needs_its_own_token(gw: Gateway) -> None:
    resp = httpx.post(gw.url + "/sign-in", data={"method": "key", "key": gw.admin_key})
    assert resp.status_code == 403 and "aitre_session" not in resp.headers.get("set-cookie", "")


def test_sign_in_goes_back_only_to_this_site(gw: Gateway) -> None:
    with Visitor(gw) as v:
        page = v.get("/sign-in", params={"next": "//evil.example/x"})
        assert "evil.example" not in page.text
        resp = v.sign_in_form(method="key", key=gw.admin_key, next="https://evil.example/")
        assert resp.headers["location"] == "/admin"
    with Visitor(gw) as v:
        resp = v.sign_in_form(method="key", key=gw.admin_key, next="/admin/logs?status=error")
        assert resp.headers["location"] == "/admin/logs?status=error"


def test_sign_out_ends_the_session(gw: Gateway) -> None:
    with Visitor(gw) as v:
        v.sign_in(gw.admin_key)
        stolen = dict(v.http.cookies)
        assert v.post("/sign-out").headers["location"] == "/sign-in"
        assert v.get("/admin").status_code == 303
    with httpx.Client(base_url=gw.url, cookies=stolen) as replay:  # the old cookie is dead too
        assert replay.get("/admin").status_code == 303


def test_wrong_key_and_hostile_input_are_refused(gw: Gateway) -> None:
    with Visitor(gw) as v:
        for key in ("sk-" + "x" * 48, "", "x" * 100_000, "sk-\x00\n<script>"):
            resp = v.sign_in_form(method="key", key=key)
            assert resp.status_code in (401, 413), resp.status_code
            assert "aitre_session" not in resp.headers.get("set-cookie", "")
        assert "<script>" not in v.sign_in_form(method="password", username="<script>x", password="y").text


def test_huge_form_is_refused_before_it_is_read(gw: Gateway, admin: Visitor) -> None:
    resp = admin.post("/admin/groups", {"name": "x" * (2 * 1024 * 1024)})
    assert resp.status_code == 413


def test_form_must_be_urlencoded(admin: Visitor) -> None:
    resp = admin.http.post(
        "/admin/groups",
        content=b'{"name": "x"}',
        headers={"content-type": "application/json", "x-csrf-token": admin.csrf},
    )
    assert resp.status_code == 415


def test_disabled_user_is_signed_out_at_once(gw: Gateway) -> None:
    victim, key = new_user(gw)
    with Visitor(gw) as v:
        v.sign_in(key)
        admin_api(gw, "PATCH", f"/users/{victim['id']}", json={"enabled": False})
        assert v.get("/me").status_code == 303


def test_revoked_key_ends_its_sessions(gw: Gateway) -> None:
    victim, key = new_user(gw)
    with Visitor(gw) as v:
        v.sign_in(key)
        keys = admin_api(gw, "GET", f"/keys?user_id={victim['id']}")["data"]
        admin_api(gw, "DELETE", f"/keys/{keys[0]['id']}")
        assert v.get("/me").status_code == 303


def test_limited_key_may_not_manage_keys_or_set_a_password(gw: Gateway) -> None:
    victim, _ = new_user(gw)
    limited = admin_api(gw, "POST", "/keys", json={"user_id": victim["id"], "rpm": 10})["key"]
    with Visitor(gw) as v:
        v.sign_in(limited)
        assert v.get("/me").status_code == 200
        assert v.get("/me/keys").status_code == 403
        assert v.post("/me/keys", {"name": "escape"}).status_code == 403
        assert v.post("/me/playground-key").status_code == 403
        assert (
            v.post("/me/password", {"password": "a-new-password", "confirm": "a-new-password"}).status_code
            == 403
        )
    assert admin_api(gw, "GET", f"/users/{victim['id']}")["has_password"] is False
    assert admin_api(gw, "GET", f"/keys?user_id={victim['id']}")["total"] == 2


def test_another_users_key_cannot_be_revoked(gw: Gateway, user: Visitor) -> None:
    other, _ = new_user(gw)
    key = admin_api(gw, "GET", f"/keys?user_id={other['id']}")["data"][0]
    resp = user.post(f"/me/keys/{key['id']}/revoke")
    assert resp.status_code == 404
    assert admin_api(gw, "GET", f"/keys/{key['id']}")["revoked_at"] is None


def test_key_made_in_the_console_is_shown_once_and_works(gw: Gateway, user: Visitor) -> None:
    resp = user.post("/me/keys", {"name": "ci", "quota_usd": "1", "rpm": "30"})
    assert resp.status_code == 200
    found = __import__("re").search(r'value="(sk-[A-Za-z0-9]{48})"', resp.text)
    assert found is not None
    key = found.group(1)
    assert gw.chat(key).status_code == 200
    listing = user.get("/me/keys").text
    assert key not in listing and key[:7] in listing  # later pages show the hint only


def test_playground_key_is_made_for_the_signed_in_user(gw: Gateway) -> None:
    owner, _ = new_user(gw)
    admin_api(gw, "PUT", f"/users/{owner['id']}/password", json={"password": "playground pw"})
    with Visitor(gw) as v:
        v.sign_in(username=owner["username"], password="playground pw")
        assert v.post("/me/playground-key", csrf=False).status_code == 403
        resp = v.http.post("/me/playground-key", headers={"X-CSRF-Token": v.csrf})
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        key = resp.json()["key"]
    assert gw.chat(key).status_code == 200
    made = admin_api(gw, "GET", f"/keys?user_id={owner['id']}")["data"]
    assert "console playground" in {k["name"] for k in made}
