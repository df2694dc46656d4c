"""Console sessions and the failed sign-in counters, both in the database: every gateway process
(and instance) behind a load balancer sees the same sessions and counts the same failures.

The cookie carries 32 random bytes; the table keeps their SHA-256 only, so a copy of the database
signs no one in. A session ends when unused for `console_idle_minutes`, `console_session_hours`
after sign-in, at sign-out, and when its user's password changes; it is refused (and removed) as
soon as its user is disabled or the key it signed in with stops working.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.config import Settings
from aitre.store.models import ConsoleSession, SignInFailure, Token, User, now_ms

# `seen_at` is written at most this often per session: a page view is then a read, not a write.
TOUCH_MS = 30_000
MAX_USER_AGENT = 256


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Found:
    session: ConsoleSession
    user: User
    token: Token | None


def _limits(settings: Settings) -> tuple[int, int]:
    return int(settings.console_idle_minutes * 60_000), int(settings.console_session_hours * 3_600_000)


async def create(
    db: AsyncSession, settings: Settings, user_id: int, token_id: int | None, ip: str, agent: str
) -> tuple[str, ConsoleSession]:
    """A new session (a new id every sign-in: no fixation); the plain cookie token and the row.
    Ended sessions are swept here, so the table holds about the live ones."""
    now = now_ms()
    idle, longest = _limits(settings)
    await db.execute(
        delete(ConsoleSession).where(
            or_(ConsoleSession.seen_at < now - idle, ConsoleSession.created_at < now - longest)
        )
    )
    token = new_token()
    row = ConsoleSession(
        id=session_id(token),
        user_id=user_id,
        token_id=token_id,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        seen_at=now,
        client_ip=ip[:64],
        user_agent=agent[:MAX_USER_AGENT],
    )
    db.add(row)
    await db.flush()
    return token, row


async def find(db: AsyncSession, settings: Settings, token: str) -> Found | None:
    """The live session behind a cookie token, its user and key; None (and the row removed) when
    it has ended. Moves `seen_at` (at most every `TOUCH_MS`). Commits."""
    if not token or len(token) > 128:
        return None
    sid = session_id(token)
    stmt = (
        select(ConsoleSession, User, Token)
        .join(User, User.id == ConsoleSession.user_id)
        .outerjoin(Token, Token.id == ConsoleSession.token_id)
        .where(ConsoleSession.id == sid)
    )
    row = (await db.execute(stmt)).first()
    if row is None:
        return None
    found = Found(*row)
    now = now_ms()
    idle, longest = _limits(settings)
    if now - found.session.seen_at > idle or now - found.session.created_at > longest:
        await end(db, sid)
        return None
    # A short idle limit (tests, a strict operator) needs `seen_at` kept closer than TOUCH_MS.
    if now - found.session.seen_at > min(TOUCH_MS, idle // 4):
        await db.execute(update(ConsoleSession).where(ConsoleSession.id == sid).values(seen_at=now))
        await db.commit()
    return found


async def end(db: AsyncSession, sid: str) -> None:
    await db.execute(delete(ConsoleSession).where(ConsoleSession.id == sid))
    await db.commit()


# --- failed sign-ins ----------------------------------------------------------------------------
def ip_scope(ip: str) -> str:
    return "ip:" + ip[:64]


def user_scope(user_id: int) -> str:
    return f"user:{user_id}"


async def blocked_for(db: AsyncSession, scope: str, limit: int, window_ms: int) -> int:
    """Seconds until `scope` may try again (0: it may now)."""
    row = await db.get(SignInFailure, scope)
    if row is None:
        return 0
    ends = row.window_start + window_ms
    now = now_ms()
    if row.failures < limit or ends <= now:
        return 0
    return max(1, (ends - now + 999) // 1000)


async def record_failure(db: AsyncSession, scopes: list[str], window_ms: int) -> None:
    """Count one failure for each scope (a new window where the last one ended). Commits."""
    now = now_ms()
    await db.execute(delete(SignInFailure).where(SignInFailure.window_start < now - window_ms))
    for scope in scopes:
        changed = await db.execute(
            update(SignInFailure)
            .where(SignInFailure.scope == scope)
            .values(failures=SignInFailure.failures + 1)
        )
        if getattr(changed, "rowcount", 0):
            continue
        try:
            async with db.begin_nested():
                db.add(SignInFailure(scope=scope, failures=1, window_start=now))
        except IntegrityError:  # another process counted its first failure just now
            await db.execute(
                update(SignInFailure)
                .where(SignInFailure.scope == scope)
                .values(failures=SignInFailure.failures + 1)
            )
    await db.commit()


async def clear(db: AsyncSession, scope: str) -> None:
    await db.execute(delete(SignInFailure).where(SignInFailure.scope == scope))
