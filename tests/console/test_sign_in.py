"""Signing in with a password (set by an admin or by the user), the failed sign-in limits per
address and per user, idle expiry, and the password routes of the admin and user APIs."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.console.kit import Visitor, admin_api, flash_of, new_user
from tests.support.processes import Gateway


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_admin_sets_a_password_and_the_user_signs_in_with_it(gw: Gateway) -> None:
    user, _ = new_user(gw)
    admin_api(gw, "PUT", f"/users/{user['id']}/password", json={"password": "correct horse"})
    assert admin_api(gw, "GET", f"/users/{user['id']}")["has_password"] is True
    with Visitor(gw) as v:
        resp = v.sign_in_form(method="password", username=user["username"], password="wrong horse")
        assert resp.status_code == 401 and flash_of(resp) == (
            "error",
            "That user name and password do not match.",
        )
        v.sign_in(username=user["username"], password="correct horse")
        page = v.get("/me")
        assert page.status_code == 200 and user["username"] in page.text
        # a password session is the user's own credential: it manages keys
        assert v.get("/me/keys").status_code == 200
        # the admin removes the password: the session ends, the password no longer works
        admin_api(gw, "DELETE", f"/users/{user['id']}/password")
        assert v.get("/me").status_code == 303
        assert (
            v.sign_in_form(method="password", username=user["username"], password="correct horse").status_code
            == 401
        )


def test_user_sets_own_password_with_a_key_and_changes_it_signed_in(gw: Gateway) -> None:
    user, key = new_user(gw)
    resp = httpx.put(gw.url + "/api/user/password", json={"password": "first password"}, headers=auth(key))
    assert resp.status_code == 200 and resp.json()["has_password"] is True
    with Visitor(gw) as v, Visitor(gw) as other:
        v.sign_in(username=user["username"], password="first password")
        other.sign_in(username=user["username"], password="first password")
        wrong = v.post(
            "/me/password",
            {"current": "nope nope", "password": "second password", "confirm": "second password"},
        )
        assert wrong.status_code == 303 and v.flash() == ("error", "The current password is wrong.")
        ok = v.post(
            "/me/password",
            {"current": "first password", "password": "second password", "confirm": "second password"},
        )
        assert ok.status_code == 303
        assert v.get("/me").status_code == 200  # this session stays
        assert other.get("/me").status_code == 303  # the others are signed out
    with Visitor(gw) as v:
        assert (
            v.sign_in_form(
                method="password", username=user["username"], password="first password"
            ).status_code
            == 401
        )
        v.sign_in(username=user["username"], password="second password")


def test_password_routes_refuse_bad_callers_and_input(gw: Gateway) -> None:
    user, key = new_user(gw)
    limited = admin_api(gw, "POST", "/keys", json={"user_id": user["id"], "rpm": 5})["key"]
    put = lambda path, body, headers: httpx.put(gw.url + path, json=body, headers=headers)  # noqa: E731
    assert put("/api/user/password", {"password": "long enough"}, {}).status_code == 401
    assert put("/api/user/password", {"password": "long enough"}, auth("sk-" + "z" * 48)).status_code == 401
    assert (
        put("/api/user/password", {"password": "long enough"}, auth(limited)).json()["error"]["code"]
        == "key_has_limits"
    )
    assert put("/api/user/password", {"password": "short"}, auth(key)).status_code == 400
    assert put("/api/user/password", {"password": "x" * 10_000}, auth(key)).status_code == 400
    assert put("/api/user/password", {"password": "long enough", "extra": 1}, auth(key)).status_code == 400
    assert (
        put(f"/api/admin/users/{user['id']}/password", {"password": "long enough"}, auth(key)).status_code
        == 403
    )
    assert (
        put("/api/admin/users/999999/password", {"password": "long enough"}, auth(gw.admin_key)).status_code
        == 404
    )
    assert admin_api(gw, "GET", f"/users/{user['id']}")["has_password"] is False


def test_disabled_user_cannot_sign_in_with_the_right_password(gw: Gateway) -> None:
    user, _ = new_user(gw)
    admin_api(gw, "PUT", f"/users/{user['id']}/password", json={"password": "right password"})
    admin_api(gw, "PATCH", f"/users/{user['id']}", json={"enabled": False})
    with Visitor(gw) as v:
        assert (
            v.sign_in_form(
                method="password", username=user["username"], password="right password"
            ).status_code
            == 401
        )


def test_failed_sign_ins_are_limited_per_user_and_per_address(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(
        AITRE_CONSOLE_MAX_FAILURES_PER_USER="3",
        AITRE_CONSOLE_MAX_FAILURES_PER_IP="6",
        AITRE_CONSOLE_FAILURE_WINDOW_MINUTES="0.05",  # 3 s
    ).start()
    user, key = new_user(gw)
    admin_api(gw, "PUT", f"/users/{user['id']}/password", json={"password": "the password"})
    with Visitor(gw) as v:
        for _ in range(3):
            assert (
                v.sign_in_form(method="password", username=user["username"], password="guess").status_code
                == 401
            )
        # the user is locked: even the right password waits for the window
        locked = v.sign_in_form(method="password", username=user["username"], password="the password")
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in locked.text
        # a key still signs the user in (the lock is on password guesses for this user)
        assert v.sign_in_form(method="key", key=key).status_code == 303
        # unknown names and wrong keys count against the address
        for _ in range(3):
            assert v.sign_in_form(method="key", key="sk-" + "q" * 48).status_code == 401
        blocked = v.sign_in_form(method="key", key=key)
        assert blocked.status_code == 429, blocked.status_code
        time.sleep(3.2)
        assert (
            v.sign_in_form(method="password", username=user["username"], password="the password").status_code
            == 303
        )
    rows = gw.sql("SELECT scope FROM sign_in_failures")
    assert all(r["scope"].startswith(("ip:", "user:")) for r in rows)


def test_idle_session_expires(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_CONSOLE_IDLE_MINUTES="0.03").start()  # 1.8 s
    with Visitor(gw) as v:
        v.sign_in(gw.admin_key)
        for _ in range(4):  # in use: it stays
            time.sleep(0.6)
            assert v.get("/me").status_code == 200
        time.sleep(2.5)
        assert v.get("/me").status_code == 303
    assert gw.sql("SELECT count(*) AS n FROM console_sessions WHERE token_id IS NOT NULL")[0]["n"] == 0
