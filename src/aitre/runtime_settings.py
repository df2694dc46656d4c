"""Settings an operator may change while the gateway runs (the admin API and the console's
settings page), stored as overrides in the database.

Only settings read where they are used (`state.settings.<name>` at request time) are tunable
here: changing one that was copied into an object at start-up would show a value that does not
apply. An override is written with the catalog version bump, so every process (workers, other
instances) applies it when it next reloads its catalog, within `AITRE_CACHE_REFRESH_SECONDS`;
removing it brings back the value the process started with (environment, `.env`, TOML).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import AnyHttpUrl, Field, TypeAdapter, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.config import Settings
from aitre.errors import DomainError
from aitre.store.models import RuntimeSetting, now_ms

_MB = 1024 * 1024


def _csv_list(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _url_or_empty(value: str) -> str:
    if value:
        TypeAdapter(AnyHttpUrl).validate_python(value)
    return value


ModelList = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=200)]

# name -> the values it may take. Bounds keep a typo from taking the gateway down (a body limit
# of 0, a retry storm, a cookie that never expires).
TUNABLES: dict[str, TypeAdapter[Any]] = {
    "retries": TypeAdapter(Annotated[int, Field(ge=0, le=10)]),
    "retry_backoff_seconds": TypeAdapter(Annotated[float, Field(ge=0, le=10)]),
    "auto_disable": TypeAdapter(bool),
    "auto_reenable": TypeAdapter(bool),
    "max_body_bytes": TypeAdapter(Annotated[int, Field(ge=1024, le=1024 * _MB)]),
    "api_max_body_bytes": TypeAdapter(Annotated[int, Field(ge=1024, le=64 * _MB)]),
    "audio_max_bytes": TypeAdapter(Annotated[int, Field(ge=1024, le=1024 * _MB)]),
    "rehost_images": TypeAdapter(bool),
    "image_chat_models": TypeAdapter(ModelList),
    "default_completion_estimate": TypeAdapter(Annotated[int, Field(ge=1, le=1_000_000)]),
    "mj_max_open_tasks": TypeAdapter(Annotated[int, Field(ge=0, le=1_000_000)]),
    "mj_submit_wait_seconds": TypeAdapter(Annotated[float, Field(ge=0, le=60)]),
    "task_notify_hook": TypeAdapter(Annotated[str, Field(max_length=2048)]),
    "console_idle_minutes": TypeAdapter(Annotated[float, Field(ge=1, le=7 * 24 * 60)]),
    "console_max_failures_per_ip": TypeAdapter(Annotated[int, Field(ge=1, le=1_000_000)]),
    "console_max_failures_per_user": TypeAdapter(Annotated[int, Field(ge=1, le=1_000_000)]),
    "console_failure_window_minutes": TypeAdapter(Annotated[float, Field(ge=1, le=24 * 60)]),
}


class SettingError(DomainError):
    code = "invalid_setting"

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def validate(name: str, value: Any) -> Any:
    """`value` as the setting `name` holds it; SettingError (400) when it may not take it."""
    adapter = TUNABLES.get(name)
    if adapter is None:
        raise SettingError(
            f"{name!r} cannot be changed at run time; tunable: {', '.join(sorted(TUNABLES))}", name
        )
    if name == "image_chat_models":
        value = _csv_list(value)
    try:
        out = adapter.validate_python(value)
        if name == "task_notify_hook":
            out = _url_or_empty(out)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingError(f"{name}: {first['msg']}", name) from None
    except ValueError as exc:
        raise SettingError(f"{name}: {exc}", name) from None
    return out


@dataclass(frozen=True, slots=True)
class SettingView:
    name: str
    value: Any
    default: Any  # what the process started with
    overridden: bool
    description: str


class RuntimeSettings:
    """Applies the stored overrides onto this process's `Settings` (the object every part reads)."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self._sessions = sessions
        self.base = {name: getattr(settings, name) for name in TUNABLES}
        self.overridden: set[str] = set()

    async def load(self) -> None:
        async with self._sessions() as session:
            rows = list(await session.scalars(select(RuntimeSetting)))
        stored = {}
        for row in rows:
            try:
                stored[row.name] = orjson.loads(row.value)
            except orjson.JSONDecodeError:  # written by hand: the start value applies
                continue
        self.apply(stored)

    def apply(self, stored: dict[str, Any]) -> None:
        overridden = set()
        for name in TUNABLES:
            value = self.base[name]
            if name in stored:
                try:
                    value = validate(name, stored[name])
                    overridden.add(name)
                except SettingError:
                    value = self.base[name]  # a row from a newer version's rules: keep the start value
            setattr(self.settings, name, value)
        self.overridden = overridden

    def describe(self) -> list[SettingView]:
        fields = Settings.model_fields
        return [
            SettingView(
                name=name,
                value=getattr(self.settings, name),
                default=self.base[name],
                overridden=name in self.overridden,
                description=fields[name].description or "",
            )
            for name in TUNABLES
        ]


async def save(session: AsyncSession, changes: dict[str, Any]) -> None:
    """Store overrides (`None`: remove one), in the caller's transaction; everything is checked
    before anything is written."""
    checked = {name: None if value is None else validate(name, value) for name, value in changes.items()}
    for name, value in checked.items():
        if value is None:
            await session.execute(delete(RuntimeSetting).where(RuntimeSetting.name == name))
            continue
        text = orjson.dumps(value).decode()
        row = await session.get(RuntimeSetting, name)
        if row is None:
            session.add(RuntimeSetting(name=name, value=text, updated_at=now_ms()))
        else:
            row.value, row.updated_at = text, now_ms()
    await session.flush()
