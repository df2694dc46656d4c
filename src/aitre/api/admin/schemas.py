"""Request and response models shared by the admin and user APIs (pydantic v2, for `/docs`)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from aitre.accounts.repo import MAX_INT32, MAX_TIME_MS, MAX_UNITS
from aitre.api.common import MAX_MODEL_CHARS
from aitre.billing.usage_query import QueryError, parse_time
from aitre.store.models import Token, UsageLog, User

T = TypeVar("T")
MS = "ms since the epoch"
# A model name as the usage log and the price table store it (String(128)).
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_CHARS)]


def parse_moment(value: str | int, param: str) -> int:
    """A time as `parse_time` reads it, within 1970 to 9999: a bigger number would overflow the
    database's 64-bit integer (SQLite: a 500; a huge ISO year is refused by the parser itself)."""
    ms = parse_time(value, param=param)
    if not 0 <= ms <= MAX_TIME_MS:
        raise QueryError(f"{param} must lie between 1970 and the year 9999", param)
    return ms


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every failure, in OpenAI's shape."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid input"},
    401: {"model": ErrorResponse, "description": "Missing, unknown or expired API key"},
    403: {"model": ErrorResponse, "description": "The key may not use this route"},
    404: {"model": ErrorResponse, "description": "No such record"},
    409: {"model": ErrorResponse, "description": "Conflicts with an existing record"},
}


class RowOut(BaseModel):
    """A response model filled from a database row: each field from the attribute of the same
    name, unless given in `extra` (renamed, derived or joined values)."""

    @classmethod
    def from_row(cls, row: Any, **extra: Any) -> Self:
        names = (n for n in cls.model_fields if n not in extra and hasattr(row, n))
        return cls(**{n: getattr(row, n) for n in names}, **extra)


class Page(BaseModel, Generic[T]):
    data: list[T]
    page: int
    per_page: int
    total: int = Field(description="Rows matching the filters, over all pages.")


class ListOf(BaseModel, Generic[T]):
    data: list[T]


class Deleted(BaseModel):
    id: int | str
    deleted: bool = True


# --- keys --------------------------------------------------------------------------------------
class KeyLimitsIn(BaseModel):
    """A key's limits. Every field may be left out; `null` lifts a limit."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=128)
    quota: int | None = Field(
        None,
        ge=0,
        le=MAX_UNITS,
        description="The key's own spending cap in units; null: no cap (the balance applies).",
    )
    expires_at: int | str | None = Field(
        None, description=f"When the key stops working: {MS}, an ISO time, or `+30d`; null: never."
    )
    allowed_models: list[ModelName] | None = Field(None, description="Models the key may use; null: any.")
    allowed_ips: list[str] | None = Field(
        None, description="Client IPs or CIDRs the key may be used from; null: any."
    )
    rpm: int = Field(0, ge=0, le=MAX_INT32, description="Requests per minute; 0: no limit.")
    tpm: int = Field(0, ge=0, le=MAX_INT32, description="Tokens per minute; 0: no limit.")

    def settings(self) -> dict[str, Any]:
        """The fields that were sent, as `accounts.repo.create_key/update_key` take them."""
        out = self.model_dump(exclude_unset=True, exclude={"user_id"})
        if out.get("expires_at") is not None:
            out["expires_at"] = parse_moment(out["expires_at"], "expires_at")
        return out


class KeySettingsIn(KeyLimitsIn):
    model_mapping: dict[ModelName, ModelName] = Field(
        default_factory=dict, description="Rename models for this key: {asked: served}."
    )


class KeyUpdateIn(KeySettingsIn):
    """Only the fields sent change."""

    enabled: bool | None = Field(None, description="false pauses the key; revoked keys cannot be enabled.")

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        if out.get("enabled", False) is None:
            del out["enabled"]
        return out


class KeyOut(RowOut):
    id: int
    user_id: int
    username: str
    name: str
    key_hint: str = Field(description="The start and end of the key, for recognising it.")
    enabled: bool
    revoked_at: int | None
    created_at: int
    expires_at: int | None
    quota: int | None = Field(description="Remaining cap of the key in units; null: no cap.")
    used_quota: int
    allowed_models: list[str] | None
    allowed_ips: list[str] | None
    rpm: int
    tpm: int
    model_mapping: dict[str, str]

    @classmethod
    def of(cls, token: Token, user: User) -> KeyOut:
        return cls.from_row(
            token,
            user_id=user.id,
            username=user.username,
            quota=None if token.unlimited else token.remain_quota,
            model_mapping=dict(token.model_mapping or {}),
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The plain key. Shown only now: it is stored hashed.")


# --- usage -------------------------------------------------------------------------------------
class UserLogOut(RowOut):
    """One request as its user sees it."""

    id: int
    created_at: int
    request_id: str
    token_id: int | None
    endpoint: str
    model: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    usage_estimated: bool
    status_code: int
    error: str
    latency_ms: float
    ttfb_ms: float
    client_ip: str
    quota: int = Field(description="What the request cost, in units.")

    @classmethod
    def of(cls, log: UsageLog) -> UserLogOut:
        return cls.from_row(log, total_tokens=log.prompt_tokens + log.completion_tokens)


class LogOut(UserLogOut):
    """One request with everything the operator knows about it."""

    user_id: int | None
    username: str | None
    channel_id: int | None
    upstream_model: str
    attempts: list[dict[str, Any]]

    @classmethod
    def row(cls, log: UsageLog, username: str | None) -> LogOut:
        return cls.from_row(log, total_tokens=log.prompt_tokens + log.completion_tokens, username=username)


class Totals(RowOut):
    requests: int
    errors: int = Field(description="Requests that did not end with 200.")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    quota: int = Field(description="Units charged.")


class DayTotals(Totals):
    day: str = Field(description="UTC day, YYYY-MM-DD.")


class ModelTotals(Totals):
    model: str


class SummaryOut(BaseModel):
    since: int | None
    until: int | None
    by_day: list[DayTotals]
    by_model: list[ModelTotals]
    total: Totals
