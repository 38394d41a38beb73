"""Activity, clears, untracked: the log of changes, the clear guard and the undoable untrack.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Sizes are literals, not schema.py's constants: a migration is a snapshot and must not move when
they do.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("library_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("task_id", sa.BigInteger),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("smh_status", sa.Integer),
        sa.Column("smh_code", sa.String(64)),
        sa.Column("request_id", sa.String(128)),
    )
    op.create_index("ix_activity_library_id", "activity", ["library_id", "id"])
    op.create_table(
        "clears",
        sa.Column("library_id", sa.String(64), primary_key=True),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("task_id", sa.BigInteger),
    )
    op.create_table(
        "untracked",
        sa.Column("library_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("rows", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("untracked")
    op.drop_table("clears")
    op.drop_index("ix_activity_library_id", table_name="activity")
    op.drop_table("activity")
