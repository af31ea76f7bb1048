"""deployment identity (one row: a random id, compared with Redis by workers)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 19:20:00
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # made once, here, inside the migration's transaction: replicas migrating together agree on it
    op.bulk_insert(table, [{"id": uuid.uuid4().hex, "created_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.drop_table("deployment")
