"""Exam attempts (answers, grades, feedback), practice-exam key reveal, exam blueprints.

Revision ID: 0008
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("exams") as batch:
        batch.add_column(sa.Column("keys_revealed", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("blueprint", sa.JSON, nullable=True))
    op.create_table(
        "exam_attempts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("exam_id", sa.String(36), sa.ForeignKey("exams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("results", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("max_score", sa.Float, nullable=True),
        sa.Column("grader", sa.String(32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("graded_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('in_progress', 'grading', 'graded')", name="ck_exam_attempts_status"),
    )
    op.create_index("ix_exam_attempts_exam_user", "exam_attempts", ["exam_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_exam_attempts_exam_user", table_name="exam_attempts")
    op.drop_table("exam_attempts")
    with op.batch_alter_table("exams") as batch:
        batch.drop_column("blueprint")
        batch.drop_column("keys_revealed")
