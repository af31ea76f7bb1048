"""stream ledger: the images a prediction stream still owes, and its dead letters, in the database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_images",
        sa.Column("stream_id", sa.String(length=32), nullable=False),
        sa.Column("image_key", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("blob", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=8), nullable=False),
        sa.Column("entry", sa.String(length=40), nullable=True),
        sa.Column("appended_at", sa.DateTime(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("dead_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stream_id", "image_key"),
    )
    with op.batch_alter_table("stream_images", schema=None) as batch_op:
        batch_op.create_index("ix_stream_images_state_enqueued", ["state", "enqueued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stream_images", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_images_state_enqueued")
    op.drop_table("stream_images")
