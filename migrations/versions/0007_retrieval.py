"""Retrieval: the content hash that makes the same file one document per tenant and course.

Revision ID: 0007
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_documents_content", ["faculty_id", "semester_id", "course", "content_hash"])


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint("uq_documents_content", type_="unique")
        batch.drop_column("content_hash")
