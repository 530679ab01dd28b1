"""Curriculum documents: one row per ingested object version.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("course", sa.String(100), nullable=False),
        sa.Column("faculty_id", sa.Integer, sa.ForeignKey("faculties.id", ondelete="CASCADE"), nullable=True),
        sa.Column("semester_id", sa.Integer, sa.ForeignKey("semesters.id", ondelete="CASCADE"), nullable=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id", ondelete="SET NULL"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=True),
        sa.Column("uploaded_by", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("bucket", "object_key", "etag", name="uq_documents_object_version"),
        sa.CheckConstraint("status IN ('queued', 'processing', 'ready', 'failed')", name="ck_documents_status"),
    )
    op.create_index("ix_documents_tenant", "documents", ["faculty_id", "semester_id", "course"])


def downgrade() -> None:
    op.drop_table("documents")
