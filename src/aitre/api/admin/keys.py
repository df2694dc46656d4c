"""/api/admin/keys: every user's API keys. The plain key is in the create answer only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from aitre.accounts import repo
from aitre.accounts.repo import MAX_INT32
from aitre.api.admin.schemas import KeyCreated, KeyLimitsIn, KeyOut, KeySettingsIn, KeyUpdateIn, Page
from aitre.api.deps import Db, DbDep, PageDep, RecordId, id_query

router = APIRouter(prefix="/keys", tags=["admin: keys"])


class KeyCreateIn(KeySettingsIn):
    user_id: int = Field(ge=1, le=MAX_INT32, description="The user the key acts for.")


async def issue(db: Db, user_id: int, body: KeyLimitsIn) -> KeyCreated:
    """Create a key for `user_id` with the limits in `body` (admin and user APIs)."""
    async with db.write() as s:
        user = await repo.get_user(s, user_id)
        issued = await repo.create_key(s, user, body.settings())
    return KeyCreated(**KeyOut.of(issued.token, user).model_dump(), key=issued.key)


async def change(db: Db, key_id: int, body: KeyUpdateIn, user_id: int | None = None) -> KeyOut:
    async with db.write() as s:
        token, user = await repo.get_key(s, key_id, user_id)
        await repo.update_key(s, token, body.settings())
    return KeyOut.of(token, user)


async def revoke(db: Db, key_id: int, user_id: int | None = None) -> KeyOut:
    async with db.write() as s:
        token, user = await repo.get_key(s, key_id, user_id)
        await repo.revoke_token(s, str(token.id))
    return KeyOut.of(token, user)


@router.get("", summary="List keys (never the keys themselves)")
async def list_keys(
    db: DbDep,
    page: PageDep,
    user_id: Annotated[int | None, id_query("Only this user's keys.")] = None,
) -> Page[KeyOut]:
    async with db.read() as s:
        rows, total = await repo.list_keys(s, user_id=user_id, offset=page.offset, limit=page.per_page)
    return page.of([KeyOut.of(t, u) for t, u in rows], total)


@router.get("/{key_id}", summary="Get a key")
async def get_key(db: DbDep, key_id: RecordId) -> KeyOut:
    async with db.read() as s:
        return KeyOut.of(*await repo.get_key(s, key_id))


@router.post("", status_code=201, summary="Create a key for a user (the key is shown once)")
async def create_key(db: DbDep, body: KeyCreateIn) -> KeyCreated:
    return await issue(db, body.user_id, body)


@router.patch("/{key_id}", summary="Change a key's name, limits or status")
async def update_key(db: DbDep, key_id: RecordId, body: KeyUpdateIn) -> KeyOut:
    return await change(db, key_id, body)


@router.delete("/{key_id}", summary="Revoke a key (for good; it answers 401 from now on)")
async def revoke_key(db: DbDep, key_id: RecordId) -> KeyOut:
    return await revoke(db, key_id)
