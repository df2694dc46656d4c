"""FastAPI dependencies of the admin and user APIs, as `Annotated` aliases.

`AdminDep` / `CallerDep` authenticate the bearer key (401) and, for admin routes, require the
admin role (403). `DbDep` hands out sessions: `db.read()` for queries, `db.write()` for changes,
which commits, bumps the catalog version (so other gateways reload) and refreshes this
process's caches at once. Domain errors (`ValueError`s with a `status`) become OpenAI-shaped
`ApiError`s with that status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.accounts.auth import Caller
from aitre.accounts.policy import check_expiry, check_ip
from aitre.accounts.repo import MAX_INT32
from aitre.api.admin.schemas import Page, parse_moment
from aitre.api.common import app_state, client_ip, identify
from aitre.api.openapi_build import BEARER, SECURITY_SCHEME
from aitre.billing.usage_query import LogFilter
from aitre.errors import ApiError
from aitre.state import AppState
from aitre.store.version import bump_version

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, scheme_name=SECURITY_SCHEME, description=BEARER["description"])


def to_api_error(exc: Exception) -> ApiError:
    """A domain error as the client sees it: its own status (400 unless it says otherwise)."""
    if isinstance(exc, IntegrityError):
        return ApiError(409, "That conflicts with an existing record.", code="conflict")
    return ApiError(
        getattr(exc, "status", 400),
        str(exc),
        code=getattr(exc, "code", None),
        param=getattr(exc, "param", None),
    )


@contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except ApiError:
        raise
    except (ValueError, IntegrityError) as exc:
        raise to_api_error(exc) from None


def get_state(request: Request) -> AppState:
    return app_state(request)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_caller(
    request: Request,
    state: StateDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    found = request.scope.get("aitre.caller")  # checked already by `ApiGuard`, before the body was read
    if isinstance(found, Caller):
        return found
    caller = await identify(request, state)
    check_expiry(caller)
    check_ip(caller, client_ip(request))
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise ApiError(403, "This route needs an admin's API key.", code="admin_required")
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]


class Db:
    def __init__(self, state: AppState) -> None:
        self.state = state

    @asynccontextmanager
    async def read(self, *, current: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for queries; `current`: write this process's pending books (ledger entries,
        usage rows) first, so balances, ledgers and logs read are up to the moment."""
        if current:
            await self.state.accountant.bank.flush()
        with domain_errors():
            async with self.state.sessions() as session:
                yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction; on success the catalog version moves and this process reloads."""
        with domain_errors():
            async with self.state.sessions() as session:
                async with session.begin():
                    yield session
                    await bump_version(session)
                await self.state.accountant.bank.apply_external(session.info)
        await self.state.catalog.announce()


def get_db(state: StateDep) -> Db:
    return Db(state)


DbDep = Annotated[Db, Depends(get_db)]


async def get_unlimited_caller(caller: CallerDep, db: DbDep) -> Caller:
    """For the key routes: a key with limits (a quota, an expiry, models, IPs, rates, a mapping) is
    a credential of limited rights, often handed to an app. Were it to make keys, it could mint
    itself one without its limits, or revoke its owner's other keys; and even a key made within
    its limits would double what may be spent. So only a key without limits manages keys. The
    limits are read from the database, not the key cache: a change applies at once."""
    async with db.read() as session:
        token, _ = await repo.get_key(session, caller.token_id)
    limits = repo.key_limits(token)
    if limits:
        raise ApiError(
            403,
            f"This API key has limits ({', '.join(limits)}); only a key without limits can manage keys.",
            code="key_has_limits",
        )
    return caller


UnlimitedCallerDep = Annotated[Caller, Depends(get_unlimited_caller)]


# Record ids are 32-bit integers in the database: a bigger number is refused (400) before it
# reaches a query (PostgreSQL would refuse it there, SQLite raise on it past 64 bits: a 500).
RecordId = Annotated[int, Path(ge=1, le=MAX_INT32, description="The record's id.")]
MAX_PAGE = 1_000_000


def id_query(description: str) -> object:
    return Query(ge=1, le=MAX_INT32, description=description)


@dataclass(frozen=True, slots=True)
class PageParams:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def of(self, items: Sequence[T], total: int) -> Page[T]:
        return Page(data=list(items), page=self.page, per_page=self.per_page, total=total)


def get_page(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page number, from 1 to {MAX_PAGE}.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=500, description="Rows per page (at most 500).")] = 50,
) -> PageParams:
    return PageParams(page, per_page)


PageDep = Annotated[PageParams, Depends(get_page)]

_TIME_HELP = "ms since the epoch, an ISO date/time (UTC unless it has a zone), or relative like -7d"


def _time(value: str | None, param: str) -> int | None:
    if value is None or not value.strip():
        return None
    with domain_errors():
        return parse_moment(value, param)


def get_user_log_filter(
    model: Annotated[str | None, Query(description="Exact model name as sent by the client.")] = None,
    token_id: Annotated[int | None, id_query("Only this key's requests.")] = None,
    status: Annotated[
        str | None, Query(description="A status code (429), a class (5xx), `ok` or `error`.")
    ] = None,
    since: Annotated[str | None, Query(description=f"From this time, inclusive: {_TIME_HELP}.")] = None,
    until: Annotated[str | None, Query(description=f"Before this time: {_TIME_HELP}.")] = None,
) -> LogFilter:
    with domain_errors():
        return LogFilter(
            model=model or None,
            token_id=token_id,
            status=status or None,
            since=_time(since, "since"),
            until=_time(until, "until"),
        )


UserLogFilterDep = Annotated[LogFilter, Depends(get_user_log_filter)]


def get_log_filter(
    base: UserLogFilterDep,
    user_id: Annotated[int | None, id_query("Only this user's requests.")] = None,
    channel_id: Annotated[int | None, id_query("Only requests served by this channel.")] = None,
) -> LogFilter:
    return replace(base, user_id=user_id, channel_id=channel_id)


LogFilterDep = Annotated[LogFilter, Depends(get_log_filter)]
