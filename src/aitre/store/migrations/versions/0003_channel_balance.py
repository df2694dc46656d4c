"""channel balance

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 23:51:25.435970
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("balance", sa.String(length=32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("balance_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("balance_at")
        batch_op.drop_column("balance")
