"""/api/user/keys: the caller's own keys (list, create with limits, revoke), for keys without limits."""

from __future__ import annotations

from fastapi import APIRouter

from aitre.accounts import repo
from aitre.api.admin import keys as admin_keys
from aitre.api.admin.schemas import KeyCreated, KeyLimitsIn, KeyOut, Page
from aitre.api.deps import DbDep, PageDep, RecordId, UnlimitedCallerDep

router = APIRouter(prefix="/keys", tags=["user: keys"])


@router.get("", summary="My keys (never the keys themselves)")
async def list_keys(db: DbDep, caller: UnlimitedCallerDep, page: PageDep) -> Page[KeyOut]:
    async with db.read() as s:
        rows, total = await repo.list_keys(s, user_id=caller.user_id, offset=page.offset, limit=page.per_page)
    return page.of([KeyOut.of(t, u) for t, u in rows], total)


@router.post("", status_code=201, summary="Create a key with limits (the key is shown once)")
async def create_key(db: DbDep, caller: UnlimitedCallerDep, body: KeyLimitsIn) -> KeyCreated:
    return await admin_keys.issue(db, caller.user_id, body)


@router.delete("/{key_id}", summary="Revoke one of my keys")
async def revoke_key(db: DbDep, caller: UnlimitedCallerDep, key_id: RecordId) -> KeyOut:
    return await admin_keys.revoke(db, key_id, user_id=caller.user_id)
