"""Driving the admin and user APIs of a test gateway."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.processes import Gateway


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_code(resp: httpx.Response) -> str | None:
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    code: str | None = body["error"]["code"]
    return code


@dataclass
class Api:
    gw: Gateway
    http: httpx.Client

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, "/api/admin" + path, headers=auth(self.gw.admin_key), **kw)

    def user(self, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, "/api/user" + path, headers=auth(key), **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        """An admin call that must succeed; its JSON body."""
        resp = self.admin(method, path, **kw)
        assert resp.status_code == status, resp.text
        return resp.json()

    def new_user(self, usd: str = "10", **fields: Any) -> dict[str, Any]:
        body = {"username": unique("u"), "usd": usd, **fields}
        user: dict[str, Any] = self.ok("POST", "/users", 201, json=body)
        return user

    def new_key(self, user_id: int, **limits: Any) -> str:
        key: str = self.ok("POST", "/keys", 201, json={"user_id": user_id, **limits})["key"]
        return key

    def chat(
        self, key: str, model: str = "gpt-4o-mini", content: str = "Say this is a test"
    ) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        return self.http.post("/v1/chat/completions", headers=auth(key), json=body)

    def balance(self, key: str) -> int:
        resp = self.user(key, "GET", "/balance")
        assert resp.status_code == 200, resp.text
        quota: int = resp.json()["quota"]
        return quota
