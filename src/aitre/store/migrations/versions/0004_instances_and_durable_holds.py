"""Gateway instances with heartbeats; reserve rows that say who owns them and when they ended.

Existing reserve rows that already have their ending get `ended_at`; open ones of requests get
the owner `pre-0004`, an instance that never heartbeats, so the first live instance refunds them
(what every start did before); open `task_*` holds become durable (no owner). Upgrade with every
gateway stopped: older gateways end holds without the guard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "kind = 'reserve' AND ended_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at", sa.BigInteger(), nullable=True),
        sa.Column("recovered_by", sa.String(length=64), nullable=True),
        sa.Column("recovered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_node"), ["node"], unique=False)
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ended_at", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE ledger SET ended_at = created_at WHERE kind = 'reserve' AND EXISTS "
        "(SELECT 1 FROM ledger e WHERE e.hold_id = ledger.hold_id "
        "AND e.kind IN ('settle', 'refund', 'charge'))"
    )
    op.execute(
        "UPDATE ledger SET owner = 'pre-0004' WHERE kind = 'reserve' AND ended_at IS NULL "
        "AND hold_id NOT LIKE 'task\\_%' ESCAPE '\\'"
    )
    op.execute(
        "INSERT INTO instances (id, node, hostname, pid, started_at, heartbeat_at) "
        "SELECT 'pre-0004', '', '', 0, 0, 0 WHERE EXISTS (SELECT 1 FROM ledger WHERE owner = 'pre-0004')"
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_open_reserves",
            ["owner"],
            unique=False,
            sqlite_where=sa.text(_OPEN),
            postgresql_where=sa.text(_OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_open_reserves")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("owner")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_node"))
    op.drop_table("instances")
