"""Reliability: revoked access tokens kept in the database (the Redis deny-list is rebuilt from it after
Redis loses its data), and an attempt counter on exams for the reconciler.

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("issuer", sa.String(200), primary_key=True),
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    with op.batch_alter_table("refresh_families") as batch:
        batch.create_index("ix_refresh_families_revoked_at", ["revoked_at"])
    with op.batch_alter_table("exams") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("exams") as batch:
        batch.drop_column("attempts")
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_index("ix_refresh_families_revoked_at")
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
