"""/api/admin/settings: the settings that may change while the gateway runs (`aitre.runtime_settings`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aitre import runtime_settings
from aitre.api.admin.schemas import ListOf
from aitre.api.deps import Db, DbDep

router = APIRouter(prefix="/settings", tags=["admin: settings"])


class SettingOut(BaseModel):
    name: str
    value: Any = Field(description="In force now.")
    default: Any = Field(description="What the process started with (environment, .env, TOML).")
    overridden: bool = Field(description="Whether `value` is an operator's run-time override.")
    description: str


def _listing(db: Db) -> ListOf[SettingOut]:
    return ListOf(
        data=[
            SettingOut(
                name=v.name,
                value=v.value,
                default=v.default,
                overridden=v.overridden,
                description=v.description,
            )
            for v in db.state.runtime.describe()
        ]
    )


@router.get("", summary="Settings that can change at run time, with their values now")
async def list_settings(db: DbDep) -> ListOf[SettingOut]:
    return _listing(db)


@router.patch(
    "",
    summary="Change settings at run time ({name: value}; null brings back the start value)",
)
async def change_settings(db: DbDep, body: dict[str, Any]) -> ListOf[SettingOut]:
    async with db.write() as s:
        await runtime_settings.save(s, body)
    return _listing(db)
