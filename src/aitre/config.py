"""Settings: every option has a default, comes from `AITRE_*` env vars or an optional TOML file.

Precedence (highest first): init kwargs, environment, `.env`, the TOML file named by
`AITRE_CONFIG_FILE` (default `./aitre.toml` when present). Every field is documented in
`docs/configuration.md`; `tests/test_config_docs.py` keeps the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
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
    redis_max_connections: int = Field(
        64,
        description="Connections each process keeps to Redis at most; beyond that, callers wait for one "
        "(up to 20 s) rather than fail.",
    )
    redis_reseed_seconds: float = Field(
        3.0,
        description="When Redis comes back without the balances (restarted without persistence, "
        "flushed), how long to wait before loading them again from the database, so that every "
        "instance's books have reached it; requests get 503 meanwhile. Keep it above `flush_seconds`.",
    )
    secret_key: str = Field(
        "",
        description="Fernet key that encrypts upstream secrets at rest. Default: generated once into "
        "`<data_dir>/secret.key`.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: one readable line per record; `json`: one JSON object per line (time, "
        "level, logger, message, and the request's fields on access lines). Secrets are masked in both.",
    )
    access_log: bool = Field(
        False,
        description="Write one access line per request (the relay, MJ, media, health routes): request "
        "id, route, model, channel, status, latency, overhead, tokens, cost.",
    )
    metrics_token: str = Field(
        "",
        description="Bearer token a scrape of `/metrics` must send. `/metrics` answers 404 while this "
        "and `AITRE_METRICS_ALLOW_IPS` are both empty.",
    )
    metrics_flush_seconds: float = Field(
        1.0,
        description="How often each process hands its counts to the shared metrics files: another "
        "worker's requests show in a scrape within this long.",
    )
    metrics_allow_ips: Annotated[list[str], NoDecode] = Field(
        [],
        description="Addresses or CIDRs (comma-separated) that may scrape `/metrics` (behind a trusted "
        "proxy: the forwarded client address). With `AITRE_METRICS_TOKEN` too, both are required.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        ["127.0.0.1", "::1"],
        description="Proxies (addresses or CIDRs, comma-separated; `*` for any) whose X-Forwarded-For "
        "names the client: the address used for key IP limits and usage logs.",
    )
    keepalive_seconds: float = Field(
        75.0,
        description="How long an idle client connection is kept open. Longer than clients keep theirs "
        "(httpx and the openai SDK: 5 s), so that a client never sends on a connection the gateway "
        "is closing.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        description="How long a client may take to send a request's line and headers, counted from "
        "the connection's start or from the first byte of its next request; then the connection is "
        "closed (with 408 if a request had begun).",
    )
    max_connections: int = Field(
        0,
        description="Client connections each process keeps open at most; a connection beyond it gets "
        "503 `too_many_connections` and is closed. 0: the process's open-file limit (raised to its "
        "hard limit at start) less a reserve for upstream, database and Redis connections.",
    )
    key_max_inflight: int = Field(
        128,
        description="Requests one API key may have in flight in each process (a stream until it ends); "
        "with Redis, also across every process and instance (from reservation to settlement). Beyond "
        "it 429 `too_many_concurrent_requests`. 0: no cap.",
    )
    api_max_body_bytes: int = Field(
        1024 * 1024,
        description="Largest request body of the admin and user APIs (`/api/...`); their key is checked "
        "before the body is read.",
    )
    shutdown_grace_seconds: float = Field(
        30.0, description="On SIGTERM, how long in-flight requests and streams may take to finish."
    )
    docs_enabled: bool = Field(
        True,
        description="Serve the OpenAPI document (`/openapi.json`) and its browsable pages (`/docs`, "
        "`/redoc`); off: they answer 404.",
    )
    cache_refresh_seconds: float = Field(
        2.0,
        description="How often the gateway checks whether keys/channels changed in the database. With "
        "Redis, changes made by another instance or the CLI arrive at once over pub/sub; this poll is the "
        "fallback.",
    )

    # --- web console ----------------------------------------------------------------------------
    console_enabled: bool = Field(
        True, description="Serve the web console (admin and user pages) at `/`; off: its pages answer 404."
    )
    console_idle_minutes: float = Field(
        30.0, description="A console session unused for this long is signed out (run-time setting)."
    )
    console_session_hours: float = Field(
        12.0, description="A console session ends this long after sign-in, however busy it is."
    )
    console_cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Mark the console's cookies `Secure`: `auto` when the request came over HTTPS (or a "
        "proxy in `AITRE_FORWARDED_ALLOW_IPS` says so with X-Forwarded-Proto), `always`, or `never`.",
    )
    console_max_failures_per_ip: int = Field(
        20,
        description="Failed console sign-ins one client address may make per window; then its sign-ins "
        "are refused (429) until the window ends (run-time setting).",
    )
    console_max_failures_per_user: int = Field(
        5,
        description="Failed password sign-ins for one user per window; then that user's password "
        "sign-ins are refused until the window ends (signing in with a key still works; run-time setting).",
    )
    console_failure_window_minutes: float = Field(
        15.0, description="The window the failed sign-ins are counted in (run-time setting)."
    )

    # --- first start --------------------------------------------------------------------------
    bootstrap: bool = Field(
        True, description="On first start create an admin, a user, their keys and a simulator channel."
    )
    bootstrap_quota: int = Field(
        50_000_000,
        description="Quota units the first-start admin and demo users get (100 USD at the default rate).",
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
    pool_size_per_upstream: int = Field(
        128,
        description="Connections open per process to one upstream (scheme, host, port) at most, within "
        "`pool_size`: an upstream that hangs cannot take the connections the others need.",
    )
    pool_wait_seconds: float = Field(
        5.0,
        description="How long a request waits for a free upstream connection when its upstream (or the "
        "process) has none; then it fails with 503 `upstream_busy` (another channel is tried first).",
    )
    client_write_timeout: float = Field(
        30.0,
        description="Seconds a streamed answer may wait for its client to take the bytes already sent; a "
        "client that stops reading longer is cut off, its upstream call closed, and it pays for what was "
        "delivered (0: wait forever).",
    )
    upstream_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA certificates trusted for HTTPS upstreams (e.g. an internal CA). "
        "Default: the system's trust store.",
    )
    retries: int = Field(
        2, description="Further channels tried after a failure that happened before the client got a byte."
    )
    retry_backoff_seconds: float = Field(
        0.05, description="Pause before the 2nd attempt; doubles each retry (max 1 s)."
    )

    # --- channel health -------------------------------------------------------------------------
    breaker_failures: int = Field(5, description="Consecutive failures that cool a channel down.")
    breaker_error_rate: float = Field(
        0.5, description="Error rate over the last minute (10+ requests) that cools it."
    )
    breaker_cooldown_seconds: float = Field(30.0, description="First cooldown; doubles on each repeat.")
    breaker_max_cooldown_seconds: float = Field(300.0, description="Longest cooldown.")
    auto_disable: bool = Field(
        True, description="Disable a channel whose key or account the upstream rejects (401/403/quota gone)."
    )
    auto_reenable: bool = Field(True, description="Let the prober turn auto-disabled channels back on.")
    probe_interval_seconds: float = Field(
        30.0, description="How often cooled and auto-disabled channels are probed."
    )

    # --- media -------------------------------------------------------------------------------
    media_dir: Path | None = Field(
        None, description="Where generated media is kept. Default: `<data_dir>/media`."
    )
    media_retention_days: float = Field(
        30.0, description="Media older than this is deleted (0 keeps it forever)."
    )
    media_backend: Literal["local", "s3"] = Field(
        "local",
        description="Where media is kept: `local` (`media_dir`, one machine) or `s3` (an S3-compatible "
        "bucket every instance shares; needs `pip install 'aitre[s3]'`).",
    )
    media_s3_bucket: str = Field("", description="S3 backend: the bucket (it must exist).")
    media_s3_endpoint: str = Field(
        "",
        description="S3 backend: the endpoint URL (MinIO, R2, Ceph...). Empty: AWS S3 in `media_s3_region`.",
    )
    media_s3_region: str = Field("us-east-1", description="S3 backend: the bucket's region.")
    media_s3_access_key: str = Field(
        "",
        description="S3 backend: access key id. Empty: botocore's usual chain (AWS_* environment, "
        "profile, instance role).",
    )
    media_s3_secret_key: str = Field("", description="S3 backend: secret access key.")
    media_s3_prefix: str = Field(
        "", description="S3 backend: prefix of the object keys (e.g. `media/`), to share a bucket."
    )
    media_s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="S3 backend: `path` (`endpoint/bucket/key`), `virtual` (`bucket.endpoint/key`), or "
        "`auto`: path-style when an endpoint is set, virtual-hosted for AWS.",
    )
    media_s3_redirect: bool = Field(
        False,
        description="S3 backend: answer `/media/<name>` with a 302 to a presigned URL, so the bytes go "
        "from the bucket to the client; off: the gateway streams them (Range included).",
    )
    media_s3_presign_seconds: int = Field(
        3600, description="S3 backend: how long a presigned redirect stays valid."
    )
    media_s3_public_endpoint: str = Field(
        "",
        description="S3 backend: the endpoint clients reach, when it differs from `media_s3_endpoint` "
        "(presigned links are made for it). Empty: `media_s3_endpoint`.",
    )
    rehost_images: bool = Field(
        True, description="Copy images that upstreams return as (expiring) URLs into the media store."
    )
    image_chat_models: Annotated[list[str], NoDecode] = Field(
        ["gpt-4o-image", "gpt-4o-all", "gemini-2.5-flash-image-preview", "gemini-2.5-flash-image"],
        description="Chat models that make images (comma-separated); answered with markdown image links.",
    )

    # --- watermark remover (the local `sora_remover` engine) ----------------------------------
    remover_workers: int = Field(
        1, ge=1, description="Worker processes that remove watermarks at once (each uses about one core)."
    )
    remover_queue: int = Field(
        4, ge=0, description="Removal jobs that may wait for a free worker; beyond that the remover is busy."
    )
    remover_job_timeout_seconds: float = Field(
        600.0, gt=0, description="Longest one removal may take; its worker is then killed and the job fails."
    )
    remover_max_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest video the remover takes (bytes)."
    )
    remover_max_seconds: float = Field(60.0, gt=0, description="Longest video the remover takes (seconds).")
    remover_max_pixels: int = Field(
        1920 * 1080,
        ge=1,
        description="Largest frame the remover takes (width × height; 1920×1080 either way).",
    )
    remover_mark_path: Path | None = Field(
        None,
        description="RGBA PNG of the watermark to remove, at its size on a video whose shorter side is "
        "`remover_mark_reference_size`. Default: the shipped approximation of the Sora mark.",
    )
    remover_mark_reference_size: int = Field(
        720, ge=16, description="Shorter side of the video on which the mark template is drawn 1:1."
    )
    remover_match_threshold: float = Field(
        0.6, gt=0, lt=1, description="Edge correlation (0..1) a spot needs to count as the mark."
    )
    remover_method: Literal["invert", "inpaint"] = Field(
        "invert",
        description="`invert`: undo the mark's alpha blend, painting in only where that fails; "
        "`inpaint`: paint over the whole mark (for marks whose exact template is unknown).",
    )
    remover_when_no_mark: Literal["fail", "passthrough"] = Field(
        "fail",
        description="A video without the mark: `fail` (error `no_watermark_found`) or `passthrough` "
        "(the video comes back unchanged).",
    )
    remover_crf: int = Field(
        18, ge=0, le=51, description="x264 quality of the cleaned video (lower: better and larger)."
    )
    remover_preset: str = Field(
        "veryfast", description="x264 speed preset of the cleaned video (ultrafast … veryslow)."
    )

    # --- task models called by chat: sora_video2 (videos), sora_remover (watermark removal) ------
    chat_video_models: dict[str, dict[str, str]] = Field(
        {},
        description="Chat model names that make a video, added to (or replacing) the shipped ones "
        "(`sora_video2`, `-portrait`, `-landscape`, `-portrait-15s`, `-landscape-15s`), as JSON: "
        '`{"sora_video2-pro": {"model": "sora-2-pro", "size": "1024x1792", "seconds": "15"}}` (the '
        "video model a `/v1/videos` upstream is asked for, its size and length).",
    )
    chat_remover_models: Annotated[list[str], NoDecode] = Field(
        ["sora_remover"],
        description="Chat model names that remove the watermark of the video linked in the message "
        "(comma-separated).",
    )
    chat_task_wait_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a chat request for a video or a removal without `stream` waits for it; "
        "then it is answered with the task's id and where to follow it (the task goes on).",
    )
    chat_task_ping_seconds: float = Field(
        10.0,
        gt=0,
        description="While a streamed video or removal is quiet, an SSE comment (`: ping`) goes to the "
        "client this often, so proxies keep the connection.",
    )
    chat_task_max_open: int = Field(
        10,
        ge=0,
        description="Videos and removals asked for by chat that one user may have running at once; more "
        "are refused with 429 `too_many_open_tasks`. 0: no limit.",
    )
    chat_task_max_prompt_chars: int = Field(
        16_000, ge=1, description="Longest prompt of a video (or removal request) by chat (characters)."
    )
    chat_video_stall_seconds: float = Field(
        300.0,
        gt=0,
        description="A `chat-video` upstream whose answer stream stays silent this long (not even a "
        "keep-alive) fails the task (refunded). A channel's `stall_seconds` config overrides it.",
    )
    chat_video_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="Largest video downloaded from a `chat-video` upstream's final link (bytes).",
    )

    # --- fetching URLs chosen by clients (reference images) or upstreams (links in answers) ------
    fetch_allow_private: bool = Field(
        False, description="Allow fetching from private, loopback and link-local addresses (SSRF risk)."
    )
    fetch_allowed_cidrs: Annotated[list[str], NoDecode] = Field(
        [], description="Comma-separated address ranges that may be fetched even though not public."
    )
    fetch_max_bytes: int = Field(
        20 * 1024 * 1024, description="Largest file fetched from a client's URL (bytes)."
    )
    fetch_timeout: float = Field(
        15.0,
        description="Seconds allowed to fetch a URL a client or an upstream chose, redirects included.",
    )
    audio_max_bytes: int = Field(
        25 * 1024 * 1024, description="Largest audio upload for transcriptions (bytes)."
    )

    # --- billing -----------------------------------------------------------------------------
    quota_per_usd: int = Field(500_000, description="Quota units per US dollar (prices are set in USD).")
    default_completion_estimate: int = Field(
        1024, description="Output tokens reserved for a chat request that sets no max_tokens."
    )
    count_inline_bytes: int = Field(
        8192,
        description="Prompts up to this many UTF-8 bytes are counted exactly when a request is admitted; "
        "longer ones reserve one token per byte (an upper bound; the upstream's usage settles the "
        "real cost) and are counted, in a worker thread, only when the balance cannot cover that.",
    )
    flush_seconds: float = Field(
        1.0,
        description="How often ledger entries and usage-log rows (journaled at once) are written to the DB "
        "(the API's balance, ledger and log queries write them first).",
    )
    ledger_fsync: bool = Field(
        False,
        description="fsync the journal on every flush (survives power loss, not only a killed process).",
    )
    books_max_pending: int = Field(
        100_000,
        description="Ledger entries and usage rows that may wait in memory for the database (during an "
        "outage). At the bound, new billable requests get 503 `billing_unavailable` and usage rows wait "
        "in the journal only; all of it is written once the database answers.",
    )

    # --- instances ---------------------------------------------------------------------------
    instance_heartbeat_seconds: float = Field(
        5.0,
        description="How often each gateway process records in the database that it is alive (and "
        "looks for instances that are gone).",
    )
    instance_dead_seconds: float = Field(
        60.0,
        description="An instance with no heartbeat for this long is gone: another refunds the requests "
        "it held open. Keep it well above the heartbeat and longer than database hiccups last.",
    )

    # --- MidJourney API (/mj) ----------------------------------------------------------------
    mj_submit_wait_seconds: float = Field(
        10.0,
        description="How long an MJ submit waits for the upstream to take the task (a banned prompt or "
        "a modal is answered then, as midjourney-proxy does); a task still queued then is answered "
        "code 22 with its id.",
    )
    mj_max_prompt_chars: int = Field(8192, description="Longest MJ prompt accepted (characters).")
    mj_max_image_bytes: int = Field(
        10 * 1024 * 1024, description="Largest image accepted in an MJ submit (decoded bytes, each)."
    )
    mj_max_open_tasks: int = Field(
        50,
        description="MJ tasks one user may have open at once; more are answered code 23 (queue full). "
        "0: no limit.",
    )

    # --- videos (/v1/videos, Sora by chat) -----------------------------------------------------
    video_max_prompt_chars: int = Field(
        32_000, ge=1, description="Longest video prompt accepted (characters)."
    )
    video_max_image_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1,
        description="Largest reference image (`input_reference`) of a video request: an upload, or what "
        "its URL or data URL holds (bytes).",
    )
    video_max_open_tasks: int = Field(
        20,
        ge=0,
        description="Videos one user may have in progress at once; more are refused (429 "
        "`too_many_open_videos`). 0: no limit.",
    )
    video_max_download_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1,
        description="Largest file (video, thumbnail, spritesheet) copied from an upstream into the media "
        "store (bytes); a larger one fails the task (`video_too_large`, refunded).",
    )

    # --- tasks (MJ, videos): the durable task engine ------------------------------------------
    task_plugins: Annotated[list[str], NoDecode] = Field(
        [],
        description="Task protocols kept outside aitre: comma-separated `module:function`, each called "
        "with the task registry at start (`aitre.tasks.registry`).",
    )
    task_timeouts: dict[str, float] = Field(
        {"mj": 600.0, "video": 1800.0, "sora_remover": 900.0},
        description="Seconds a task of each kind may take from submit to its end, as JSON "
        '(`{"mj": 600}`); a task still open then fails as timed out, is refunded, and the upstream '
        "is asked to stop it.",
    )
    task_timeout_seconds: float = Field(
        900.0, description="Seconds a task of a kind not in `AITRE_TASK_TIMEOUTS` may take."
    )
    task_lease_seconds: float = Field(
        30.0,
        description="How long a worker holds a task it works on (renewed while it works); a task "
        "whose worker died is taken over by another once its lease runs out.",
    )
    task_poll_min_seconds: float = Field(
        1.0, description="Shortest pause between two polls of a running task (also bounds upstream hints)."
    )
    task_poll_max_seconds: float = Field(
        30.0,
        description="Longest pause between two polls: a task that has not changed for a while is polled "
        "less often, up to this.",
    )
    task_concurrency: int = Field(
        64,
        description="Upstream calls (submits, polls, downloads) the task workers of a process make at once.",
    )
    task_claim_batch: int = Field(200, description="Due tasks a worker claims in one query at most.")
    task_idle_check_seconds: float = Field(
        5.0,
        description="An idle engine sleeps until its next task is due, but looks at least this often "
        "for work that other processes made due (tasks they created, leases that ran out).",
    )
    task_submit_attempts: int = Field(
        3,
        description="Tries to submit a task when upstreams answer that another channel or a later try "
        "may do (before anything reached them); then it fails, refunded.",
    )
    task_history_max: int = Field(
        50, description="Entries kept in a task's history (the oldest are dropped, the first kept)."
    )
    task_notify_hook: str = Field(
        "", description="The operator's notifyHook: called for tasks whose client gave none. Empty: none."
    )
    task_notify_secret: str = Field(
        "",
        description="Key of the HMAC-SHA256 signature on calls to `AITRE_TASK_NOTIFY_HOOK` (a client's "
        "own hook is signed with its user's hook secret). Empty: those calls are not signed.",
    )
    notify_max_attempts: int = Field(
        8, description="Tries to deliver one notifyHook call (a 2xx answer ends them) before it fails."
    )
    notify_timeout: float = Field(10.0, description="Seconds a notifyHook receiver has to answer.")
    notify_backoff_seconds: float = Field(
        2.0, description="Pause before the 2nd delivery try; doubles each try (at most 5 minutes)."
    )

    @field_validator(
        "image_chat_models",
        "fetch_allowed_cidrs",
        "forwarded_allow_ips",
        "metrics_allow_ips",
        "task_plugins",
        "chat_remover_models",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("chat_video_models")
    @classmethod
    def _check_chat_video_models(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from aitre.chattask.models import parse_video_model  # the rules live with the models

        for name, fields in value.items():
            parse_video_model(name, fields)
        return value

    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

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
