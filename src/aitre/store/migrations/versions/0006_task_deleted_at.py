"""Tasks a client deleted (`DELETE /v1/videos/{id}`): the row stays (its books, its history, the
admin's view), marked with when its owner deleted it; the owner no longer sees it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 09:12:41.118305
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
