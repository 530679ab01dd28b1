"""Tutor sessions and messages, exams.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("course", sa.String(100), nullable=True),
        sa.Column("hint_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("focus_chunks", sa.JSON, nullable=False),
        sa.Column("learning_state", sa.JSON, nullable=False),
        sa.Column("learning_state_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    )
    op.create_index("ix_chat_sessions_user_id", "chat_sessions", ["user_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("citations", sa.JSON, nullable=False),
        sa.Column("refused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("hint_level", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_chat_messages_session", "chat_messages", ["session_id", "id"])
    op.create_table(
        "exams",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("creator_role", sa.String(16), nullable=False),
        sa.Column("faculty_id", sa.Integer, sa.ForeignKey("faculties.id", ondelete="CASCADE"), nullable=True),
        sa.Column("semester_id", sa.Integer, sa.ForeignKey("semesters.id", ondelete="CASCADE"), nullable=True),
        sa.Column("course", sa.String(100), nullable=True),
        sa.Column("topic", sa.String(200), nullable=True),
        sa.Column("difficulty", sa.String(16), nullable=True),
        sa.Column("num_mcq", sa.Integer, nullable=False),
        sa.Column("num_theory", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("questions", sa.JSON, nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('queued', 'generating', 'ready', 'failed')", name="ck_exams_status"),
    )
    op.create_index("ix_exams_tenant", "exams", ["faculty_id", "semester_id"])


def downgrade() -> None:
    op.drop_table("exams")
    op.drop_table("chat_messages")
    op.drop_table("chat_sessions")
