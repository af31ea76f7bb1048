"""sign-up limits per client address

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # one row per sign-up request: the per-address sign-up limit counts them
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signup_attempts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_signup_attempts_ip"), ["ip"], unique=False)
    # addresses an account signed in from: they still sign in while strangers' guesses lock the email
    op.create_table(
        "known_addresses",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "ip"),
    )


def downgrade() -> None:
    op.drop_table("known_addresses")
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signup_attempts_ip"))
        batch_op.drop_index(batch_op.f("ix_signup_attempts_at"))
    op.drop_table("signup_attempts")
