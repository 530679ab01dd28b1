"""Access: a per-user token version (role changes and deactivation refuse older tokens) and a
per-faculty enrolment policy (open, key, managed) with the hash of its enrolment key.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("faculties") as batch:
        batch.add_column(sa.Column("enrolment_policy", sa.String(16), nullable=False, server_default="open"))
        batch.add_column(sa.Column("enrolment_key_hash", sa.String(128), nullable=True))
        batch.add_column(sa.Column("enrolment_key_rotated_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("ck_faculties_enrolment_policy", "enrolment_policy IN ('open', 'key', 'managed')")


def downgrade() -> None:
    with op.batch_alter_table("faculties") as batch:
        batch.drop_constraint("ck_faculties_enrolment_policy", type_="check")
        batch.drop_column("enrolment_key_rotated_at")
        batch.drop_column("enrolment_key_hash")
        batch.drop_column("enrolment_policy")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_version")
