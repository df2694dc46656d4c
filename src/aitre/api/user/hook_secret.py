"""/api/user/hook-secret: the key that signs my tasks' notifyHook calls; rotating it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aitre.api.deps import CallerDep, DbDep
from aitre.errors import ApiError
from aitre.tasks import signing

router = APIRouter(tags=["user: tasks"])


class HookSecretOut(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of the signature on my notifyHook calls.")
    header: str = Field(signing.HEADER, description="The header that carries the signature.")
    scheme: str = Field(
        "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' under the secret>",
        description="How to check it: recompute over the raw body, compare in constant time, refuse old t.",
    )


@router.get("/hook-secret", summary="My notifyHook signing secret (made on first use)")
async def hook_secret(db: DbDep, caller: CallerDep) -> HookSecretOut:
    async with db.read() as session, session.begin():
        secret = await signing.hook_secret(session, db.state.box, caller.user_id)
    if secret is None:
        raise ApiError(404, "No such user.", code="not_found")
    return HookSecretOut(secret=secret)


@router.post(
    "/hook-secret", summary="Rotate my notifyHook signing secret (calls signed from now on use the new one)"
)
async def rotate_hook_secret(db: DbDep, caller: CallerDep) -> HookSecretOut:
    async with db.read() as session, session.begin():
        secret = await signing.rotate(session, db.state.box, caller.user_id)
    return HookSecretOut(secret=secret)
