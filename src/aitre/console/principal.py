"""Who a console session stands for, checked on every request against the database: the rights
of a session are those of what signed in, and no more.

- Signed in with an API key: that key's rights. Its user's role (an admin's key opens the
  operator pages), its expiry and its allowed IPs apply to every page; a key with limits may not
  manage keys or set a password (as on `/api/user/keys`); a key revoked, paused or expired, or a
  user disabled, ends the session at its next request.
- Signed in with the user's password: the user's own rights, as a key without limits has them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from aitre.accounts import repo
from aitre.accounts.auth import Caller, caller_for
from aitre.accounts.policy import check_ip
from aitre.api.common import client_ip
from aitre.console import sessions
from aitre.state import AppState


@dataclass(frozen=True, slots=True)
class Principal:
    session_id: str
    csrf: str
    caller: Caller
    via_key: bool  # signed in with an API key (else with a password)
    key_limited: bool  # that key has limits: it may not manage keys or set a password
    has_password: bool

    @property
    def user_id(self) -> int:
        return self.caller.user_id

    @property
    def username(self) -> str:
        return self.caller.username

    @property
    def is_admin(self) -> bool:
        return self.caller.is_admin

    @property
    def may_manage_keys(self) -> bool:
        return not self.key_limited


async def resolve(request: Request, state: AppState, token: str) -> Principal | None:
    """The visitor behind the session cookie `token`, or None (no session, or it has ended).
    Raises ApiError 403 when the key it signed in with may not be used from this address."""
    if not token:
        return None
    async with state.sessions() as db:
        found = await sessions.find(db, state.settings, token)
        if found is None:
            return None
        user, key = found.user, found.token
        ended = not user.enabled
        if found.session.token_id is not None:
            now = int(time.time() * 1000)
            ended = ended or (
                key is None
                or key.user_id != user.id
                or not key.enabled
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            )
        if ended:
            await sessions.end(db, found.session.id)
            return None
    if key is not None:
        caller = caller_for(key, user)
        check_ip(caller, client_ip(request))
        limited = bool(repo.key_limits(key))
    else:
        # A password session is the user's own credential; `token_id` 0 stands for "no key".
        caller = Caller(
            token_id=0,
            token_name="console",
            user_id=user.id,
            username=user.username,
            role=user.role,
            group=user.group_name,
        )
        limited = False
    return Principal(
        session_id=found.session.id,
        csrf=found.session.csrf,
        caller=caller,
        via_key=key is not None,
        key_limited=limited,
        has_password=bool(user.password_hash),
    )
