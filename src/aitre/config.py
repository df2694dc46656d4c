"""Settings: every option has a default, comes from `AITRE_*` env vars or an optional TOML file.

Precedence (highest first): init kwargs, environment, `.env`, the TOML file named by
`AITRE_CONFIG_FILE` (default `./aitre.toml` when present). Every field is documented in
`docs/configuration.md`; `tests/test_config_docs.py` keeps the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AITRE_", env_file=".env", extra="ignore")

    # --- server -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(3000, description="Port the gateway listens on.")
    workers: int = Field(1, description="Worker processes for `aitre serve`.")
    public_url: str = Field(
        "",
        description="Base URL clients reach the gateway at, used in media links. Default: http://host:port.",
    )
    data_dir: Path = Field(Path("./data"), description="Folder for the SQLite database, keys and media.")
    database_url: str = Field(
        "", description="SQLAlchemy async URL. Default: SQLite (WAL) at `<data_dir>/aitre.db`."
    )
    redis_url: str = Field("", description="Redis URL for multi-instance mode. Empty: in-process state.")
    secret_key: str = Field(
        "",
        description="Fernet key that encrypts upstream secrets at rest. Default: generated once into "
        "`<data_dir>/secret.key`.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    access_log: bool = Field(False, description="Write one access-log line per request (uvicorn).")
    shutdown_grace_seconds: float = Field(
        30.0, description="On SIGTERM, how long in-flight requests and streams may take to finish."
    )
    cache_refresh_seconds: float = Field(
        2.0, description="How often the gateway checks whether keys/channels changed in the database."
    )

    # --- first start --------------------------------------------------------------------------
    bootstrap: bool = Field(
        True, description="On first start create an admin, a user, their keys and a simulator channel."
    )
    write_initial_keys: bool = Field(
        True, description="Also write the first-start keys to `<data_dir>/initial-keys.env` (mode 0600)."
    )

    # --- simulator ----------------------------------------------------------------------------
    simulator_enabled: bool = Field(
        True, description="Mount the built-in simulator upstream at `/sim` (protected by its own key)."
    )

    # --- upstream calls -----------------------------------------------------------------------
    connect_timeout: float = Field(10.0, description="Seconds to open a connection to an upstream.")
    first_byte_timeout: float = Field(120.0, description="Seconds to wait for an upstream's first byte.")
    idle_timeout: float = Field(60.0, description="Seconds a stream may stay silent before it is cut.")
    max_body_bytes: int = Field(
        32 * 1024 * 1024, description="Largest request body the gateway accepts (bytes)."
    )
    pool_size: int = Field(512, description="Connections kept open per process to all upstreams.")
    retries: int = Field(
        2, description="Further channels tried after a failure that happened before the client got a byte."
    )

    # --- usage log ----------------------------------------------------------------------------
    log_flush_seconds: float = Field(0.5, description="Longest a usage-log row waits before it is written.")
    log_batch_size: int = Field(500, description="Usage-log rows written per batch.")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aitre.db').resolve()}"

    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def internal_url(self) -> str:
        """How this process reaches itself (the mounted simulator)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("AITRE_CONFIG_FILE", "aitre.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
