"""midjourney-proxy's submit answer `{code, description, result, properties}` and its codes.

A refused submission is still HTTP 200: midjourney-proxy clients read `code`, not the status.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from aitre.jsonresp import json_response

SUBMITTED = 1
NOT_FOUND = 3
VALIDATION = 4
FAILURE = 9
MODAL = 21  # also "already exists"; aitre uses it only for "waiting for the modal"
IN_QUEUE = 22
QUEUE_FULL = 23
BANNED = 24


class Refusal(Exception):
    """A submission answered with a code other than 1 (nothing runs, nothing is charged)."""

    def __init__(self, code: int, description: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.properties = properties or {}


def invalid(description: str) -> Refusal:
    return Refusal(VALIDATION, description)


def answer(
    code: int, description: str, result: str | None = None, properties: dict[str, Any] | None = None
) -> Response:
    body = {"code": code, "description": description, "result": result, "properties": properties or {}}
    return json_response(body)


def refused(refusal: Refusal) -> Response:
    return answer(refusal.code, refusal.description, None, refusal.properties)
