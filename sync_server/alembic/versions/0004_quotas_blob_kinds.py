"""per-user quotas and blob kinds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 19:10:00

A blob's kind moves to each user's hold of it (user_blobs.kind; existing holds take the kind the bytes
were first uploaded as, which is what decided until now); each hold carries the blob's size with an
index (user_id, size), so the storage quota sums a user's bytes from the index alone; and a job
remembers how many bytes its upload takes (jobs.upload_bytes; existing ones: 0, their size is not known
to the database).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="image", nullable=False))
        batch_op.add_column(sa.Column("size", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(
        "UPDATE user_blobs SET kind = (SELECT blobs.kind FROM blobs WHERE blobs.sha256 = user_blobs.sha256), "
        "size = (SELECT blobs.size FROM blobs WHERE blobs.sha256 = user_blobs.sha256)"
    )
    with op.batch_alter_table("user_blobs", schema=None) as batch_op:
        batch_op.create_index("ix_user_blobs_user_size", ["user_id", "size"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_bytes", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("upload_bytes")
    with op.batch_alter_table("user_blobs", schema=None) as batch_op:
        batch_op.drop_index("ix_user_blobs_user_size")
        batch_op.drop_column("size")
        batch_op.drop_column("kind")
