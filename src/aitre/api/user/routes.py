"""The user API router: every route under `/api/user`, for any valid key, acting for its user."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from aitre.api.admin.schemas import ERROR_RESPONSES
from aitre.api.deps import get_caller
from aitre.api.user import account, hook_secret, keys, tasks, usage

router = APIRouter(prefix="/api/user", dependencies=[Depends(get_caller)], responses=ERROR_RESPONSES)
for module in (account, keys, usage, hook_secret, tasks):
    router.include_router(module.router)
