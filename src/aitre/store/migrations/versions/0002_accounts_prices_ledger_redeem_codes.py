"""Accounts with quotas and limits, groups, prices, the ledger, redeem codes.

Columns added to existing tables carry server defaults so upgrades keep existing rows valid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:47:51.605800
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("multiplier", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("hold_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("token_amount", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_id", "kind", name="uq_ledger_hold_kind"),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_user_id"), ["user_id"], unique=False)

    op.create_table(
        "prices",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_per_1m", sa.String(length=32), nullable=False),
        sa.Column("output_per_1m", sa.String(length=32), nullable=False),
        sa.Column("cached_input_per_1m", sa.String(length=32), nullable=False),
        sa.Column("per_call", sa.String(length=32), nullable=False),
        sa.Column("per_image", sa.String(length=32), nullable=False),
        sa.Column("image_prices", sa.JSON(), nullable=False),
        sa.Column("per_second", sa.String(length=32), nullable=False),
        sa.Column("per_1m_chars", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model"),
    )
    op.create_table(
        "redeem_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hint", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("quota", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("used_by", sa.Integer(), nullable=True),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("unlimited", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("remain_quota", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("used_quota", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("allowed_ips", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("rpm", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tpm", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("model_mapping", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table("usage_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("attempts", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("used_quota", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("request_count", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("request_count")
        batch_op.drop_column("used_quota")
        batch_op.drop_column("quota")

    with op.batch_alter_table("usage_logs", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("quota")

    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("model_mapping")
        batch_op.drop_column("tpm")
        batch_op.drop_column("rpm")
        batch_op.drop_column("allowed_ips")
        batch_op.drop_column("allowed_models")
        batch_op.drop_column("used_quota")
        batch_op.drop_column("remain_quota")
        batch_op.drop_column("unlimited")
        batch_op.drop_column("expires_at")

    op.drop_table("redeem_codes")
    op.drop_table("prices")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_user_id"))

    op.drop_table("ledger")
    op.drop_table("groups")
