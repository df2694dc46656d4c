"""The database schema, as SQLAlchemy 2 declarative models.

Changes go through Alembic migrations (`store/migrations/versions/`); the models and the newest
migration must agree (`tests/store/test_migrations.py` checks it).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now_ms() -> int:
    return int(time.time() * 1000)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Small key/value table: schema facts and the cache version other processes watch."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class User(Base):
    """`quota` is the balance in integer units; it always equals the sum of the user's ledger."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    group_name: Mapped[str] = mapped_column(String(64), default="default")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    # Signs the user's notifyHook calls (HMAC-SHA256), Fernet-encrypted; made on first use.
    hook_secret_enc: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The web console's sign-in password (argon2id, `accounts.passwords`); empty: none set.
    password_hash: Mapped[str] = mapped_column(Text, default="", server_default="")


class Group(Base):
    """A pricing group: every price is multiplied by `multiplier` (a decimal string)."""

    __tablename__ = "groups"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    multiplier: Mapped[str] = mapped_column(String(32), default="1")
    description: Mapped[str] = mapped_column(Text, default="")


class Token(Base):
    """An API key. Only the SHA-256 of the key is stored; `key_hint` is for display."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(32), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    unlimited: Mapped[bool] = mapped_column(Boolean, default=True)
    remain_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    allowed_ips: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rpm: Mapped[int] = mapped_column(Integer, default=0)
    tpm: Mapped[int] = mapped_column(Integer, default=0)
    model_mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class Channel(Base):
    """An upstream account. `secret_enc` is the Fernet-encrypted upstream key."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(512), default="")
    secret_enc: Mapped[str] = mapped_column(Text, default="")
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    balance: Mapped[str] = mapped_column(String(32), default="")  # USD left upstream, when it says
    balance_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


STATS_COLUMNS = (
    "created_at",
    "model",
    "user_id",
    "channel_id",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "quota",
    "latency_ms",
    "ttfb_ms",
)


class UsageLog(Base):
    """One row per relayed request, successful or not."""

    __tablename__ = "usage_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    request_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    upstream_model: Mapped[str] = mapped_column(String(128), default="")
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttfb_ms: Mapped[float] = mapped_column(Float, default=0.0)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_usage_logs_created_at", "created_at"),
        Index("ix_usage_logs_user_created", "user_id", "created_at"),
        Index("ix_usage_logs_request_id", "request_id"),
        # Covers the dashboards' aggregates (`billing.usage_stats`): they read the index alone,
        # not the table's rows (wide: errors, attempts), in time order; 4x faster on 100k rows.
        Index("ix_usage_logs_stats", *STATS_COLUMNS),
    )


class Price(Base):
    """Per-model prices in USD, as decimal strings (exact; converted to units when charging).

    `image_prices` maps `"<size>/<quality>"` or `"<size>"` to a per-image price.
    """

    __tablename__ = "prices"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    input_per_1m: Mapped[str] = mapped_column(String(32), default="0")
    output_per_1m: Mapped[str] = mapped_column(String(32), default="0")
    cached_input_per_1m: Mapped[str] = mapped_column(String(32), default="")
    per_call: Mapped[str] = mapped_column(String(32), default="0")
    per_image: Mapped[str] = mapped_column(String(32), default="0")
    image_prices: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    per_second: Mapped[str] = mapped_column(String(32), default="0")
    per_1m_chars: Mapped[str] = mapped_column(String(32), default="0")
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


# The open holds: reserve rows not yet ended. Small (requests in flight, tasks running), and what
# recovery and the by-id end look up.
OPEN_RESERVE = "kind = 'reserve' AND ended_at IS NULL"


class LedgerEntry(Base):
    """Every change to a balance. `hold_id` ties the entries of one request (or task) together:
    a `reserve` (negative), then exactly one `settle` (the difference) or `refund` (all back), or
    both as one `charge` row when they were written together. Balances are derived state:
    users.quota == SUM(amount) per user, always.

    A reserve row is a durable hold: `owner` is the gateway instance that ends it (NULL: a
    durable hold, e.g. a task's, ended only by id), `ended_at` is set, exactly once, by whoever
    ends it; an ending is written only together with that update, so a hold ends once whoever
    (the owner, another process by id, a recovering instance) tries."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hold_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    token_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("hold_id", "kind", name="uq_ledger_hold_kind"),
        Index(
            "ix_ledger_open_reserves",
            "owner",
            sqlite_where=text(OPEN_RESERVE),
            postgresql_where=text(OPEN_RESERVE),
        ),
    )


class Instance(Base):
    """A running gateway process (each worker is one). It heartbeats; one whose heartbeat is
    older than `AITRE_INSTANCE_DEAD_SECONDS` is gone, and the first live instance to claim it
    (`recovered_by`) refunds its open holds. `node` is the data folder it runs from (its journal
    is there): a restart on the same folder recovers its earlier incarnations at once. Times come
    from the database's clock, so machines with skewed clocks agree on who is gone."""

    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(64), index=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[int] = mapped_column(BigInteger)
    heartbeat_at: Mapped[int] = mapped_column(BigInteger)
    stopped_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    recovered_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recovered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RedeemCode(Base):
    """A single-use code that adds quota. Stored hashed, like keys."""

    __tablename__ = "redeem_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hint: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(128), default="")
    quota: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Tasks and deliveries that have work due: the partial indexes the workers' claims scan.
TASK_DUE = "next_poll_at IS NOT NULL"
DELIVERY_DUE = "next_at IS NOT NULL"


class Task(Base):
    """A long-running upstream job (an MJ imagine, a video). The table is the queue: a row with
    `next_poll_at` has work due then (submit, poll, finish its books); a worker claims it by
    moving `next_poll_at` to the end of its lease (`lease_until`, `lease_owner` = its instance),
    so a dead worker's task is due again when the lease runs out. Changes are conditional on
    `version` (and, for a worker, on its lease): whoever changed the row first wins. `billed_at`
    is set, once, when an ended task's hold is ended and its usage row written."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[int] = mapped_column(Integer)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_name: Mapped[str] = mapped_column(String(64), default="default")
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel_pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # runs on channel_id only
    upstream_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    hold_id: Mapped[str] = mapped_column(String(64))
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notify_hook: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_state: Mapped[str | None] = mapped_column(Text, nullable=True)
    submit_key: Mapped[str] = mapped_column(String(64), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    next_poll_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deadline_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    billed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # its owner deleted it
    notify_seq: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)  # +1 on every change (not on claims)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_tasks_due", "next_poll_at", sqlite_where=text(TASK_DUE), postgresql_where=text(TASK_DUE)),
        Index("ix_tasks_user_created", "user_id", "created_at"),
        Index("ix_tasks_kind_created", "kind", "created_at"),
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_channel_created", "channel_id", "created_at"),
        Index("ix_tasks_created", "created_at"),
    )


class TaskDelivery(Base):
    """One notifyHook call: the task's state after one change, rendered once (`body`: the exact
    bytes signed and sent). Delivered in `seq` order per task; a newer change of the same status
    supersedes one not yet sent. Claimed like tasks: `next_at` moves to the lease's end.
    `sending_at` is set before each call and cleared with its outcome: found set by the next
    claimer, the call was cut off with an unknown outcome, and it is not made again."""

    __tablename__ = "task_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    operator_hook: Mapped[bool] = mapped_column(Boolean, default=False)
    task_status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    next_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sending_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # a call under way
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("task_id", "seq", name="uq_task_deliveries_task_seq"),
        Index(
            "ix_task_deliveries_due",
            "next_at",
            sqlite_where=text(DELIVERY_DUE),
            postgresql_where=text(DELIVERY_DUE),
        ),
    )


class Lease(Base):
    """A named job that one process at a time does (on SQLite: claiming tasks), and until when."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    until: Mapped[int] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """A signed-in web console visitor (`aitre.console.sessions`). `id` is the SHA-256 of the
    cookie's random token (the token itself is never stored); `token_id` is the API key the
    visitor signed in with (NULL: with the user's password). `seen_at` moves on use (idle expiry)."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    seen_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")


class SignInFailure(Base):
    """Failed console sign-ins in the current window, per client address (`ip:...`) and per user
    (`user:<id>`): past the limit, sign-ins from there (or for that user) wait for the window."""

    __tablename__ = "sign_in_failures"
    scope: Mapped[str] = mapped_column(String(96), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[int] = mapped_column(BigInteger, default=now_ms)


class RuntimeSetting(Base):
    """An operator's run-time override of a setting (`aitre.runtime_settings`): its value as JSON
    text (not a JSON column: SQLite would read a bare number back as a number, not as JSON)."""

    __tablename__ = "runtime_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
