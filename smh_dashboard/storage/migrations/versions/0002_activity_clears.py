"""Activity, clears, untracked: the log of changes, the clear guard and the undoable untrack.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Sizes are literals, not schema.py's constants: a migration is a snapshot and must not move when
they do.
"""

import sqlalchemy as sa
from alembic import op

from smh_dashboard.storage.migrations import columns

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "activity",
        *columns.numbered(),
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
        columns.library_key(),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("task_id", sa.BigInteger),
    )
    op.create_table(
        "untracked",
        columns.library_key(),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("rows", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("untracked")
    op.drop_table("clears")
    op.drop_index("ix_activity_library_id", table_name="activity")
    op.drop_table("activity")
