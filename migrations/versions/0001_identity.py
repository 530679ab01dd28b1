"""Identity and academic hierarchy: faculties, departments, semesters, users, refresh-token families.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "faculties",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("faculty_id", sa.Integer, sa.ForeignKey("faculties.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.UniqueConstraint("faculty_id", "name", name="uq_departments_faculty_name"),
    )
    op.create_index("ix_departments_faculty_id", "departments", ["faculty_id"])
    op.create_table(
        "semesters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("faculty_id", sa.Integer, sa.ForeignKey("faculties.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.UniqueConstraint("faculty_id", "number", name="uq_semesters_faculty_number"),
    )
    op.create_index("ix_semesters_faculty_id", "semesters", ["faculty_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="student"),
        sa.Column("faculty_id", sa.Integer, sa.ForeignKey("faculties.id", ondelete="SET NULL"), nullable=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id", ondelete="SET NULL"), nullable=True),
        sa.Column("semester_id", sa.Integer, sa.ForeignKey("semesters.id", ondelete="SET NULL"), nullable=True),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("role IN ('student', 'academic', 'admin')", name="ck_users_role"),
    )
    op.create_index("ix_users_faculty_role", "users", ["faculty_id", "role"])
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("current_jti", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"])


def downgrade() -> None:
    op.drop_table("refresh_families")
    op.drop_table("users")
    op.drop_table("semesters")
    op.drop_table("departments")
    op.drop_table("faculties")
