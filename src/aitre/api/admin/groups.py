"""/api/admin/groups: pricing groups (a multiplier on every price their users pay)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from aitre.accounts import groups
from aitre.api.admin.schemas import Deleted, ListOf
from aitre.api.deps import DbDep
from aitre.store.models import Group

router = APIRouter(prefix="/groups", tags=["admin: groups"])
MAX_MULTIPLIER = 1000  # with prices of at most $1M, every charge stays far inside the quota range


class GroupOut(BaseModel):
    name: str
    multiplier: str = Field(description="Prices are multiplied by this (a decimal string).")
    description: str
    users: int = Field(description="Users in the group.")

    @classmethod
    def of(cls, g: Group, users: int) -> GroupOut:
        return cls(name=g.name, multiplier=g.multiplier, description=g.description, users=users)


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    multiplier: Decimal | None = Field(
        None, ge=0, le=MAX_MULTIPLIER, description=f"Required for a new group; 0 to {MAX_MULTIPLIER}."
    )
    description: str | None = Field(None, max_length=1000)


class GroupCreateIn(GroupIn):
    name: str = Field(min_length=1, max_length=64)
    multiplier: Decimal | None = Field(Decimal(1), ge=0, le=MAX_MULTIPLIER)


@router.get("", summary="List groups with their member counts")
async def list_groups(db: DbDep) -> ListOf[GroupOut]:
    async with db.read() as s:
        rows = await groups.list_groups(s)
    return ListOf(data=[GroupOut.of(g, n) for g, n in rows])


@router.post("", status_code=201, summary="Create a group (409 if it exists)")
async def create_group(db: DbDep, body: GroupCreateIn) -> GroupOut:
    async with db.write() as s:
        row, _ = await groups.set_group(s, body.name, body.multiplier, body.description, create_only=True)
    return GroupOut.of(row, 0)


@router.put("/{name}", summary="Create or change a group")
async def set_group(db: DbDep, name: str, body: GroupIn, response: Response) -> GroupOut:
    async with db.write() as s:
        row, created = await groups.set_group(s, name, body.multiplier, body.description)
        users = await groups.member_count(s, name)
    response.status_code = 201 if created else 200
    return GroupOut.of(row, users)


@router.delete("/{name}", summary="Delete a group (409 while users are in it)")
async def delete_group(db: DbDep, name: str) -> Deleted:
    async with db.write() as s:
        await groups.delete_group(s, name)
    return Deleted(id=name)
