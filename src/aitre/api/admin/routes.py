"""The admin API router: every route under `/api/admin`, every one for admin keys only."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from aitre.api.admin import (
    channel_health,
    channels,
    groups,
    keys,
    logs,
    prices,
    redeem,
    settings,
    summary,
    tasks,
    users,
)
from aitre.api.admin.schemas import ERROR_RESPONSES
from aitre.api.deps import get_admin

router = APIRouter(prefix="/api/admin", dependencies=[Depends(get_admin)], responses=ERROR_RESPONSES)
for module in (users, groups, keys, channel_health, channels, prices, redeem, logs, summary, tasks, settings):
    router.include_router(module.router)
