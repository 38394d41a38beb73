"""Tasks: the record of tracked tasks and its two indexes, as the dashboard first shipped them.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Sizes are literals, not schema.py's constants: a migration is a snapshot and must not move when
they do.
"""

import sqlalchemy as sa
from alembic import op

from smh_dashboard.storage.migrations import columns

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        columns.library_key(),
        sa.Column("task_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(200)),
        *columns.task_state(),
        sa.Column("results", sa.JSON),
        sa.Column("last_answer", sa.JSON),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.Column("missing_since", sa.Float),
        sa.Column("first_running_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("checked_at", sa.Float),
    )
    op.create_index("ix_tasks_library_state", "tasks", ["library_id", "state"])
    op.create_index("ix_tasks_library_added", "tasks", ["library_id", "added_at", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_library_added", table_name="tasks")
    op.drop_index("ix_tasks_library_state", table_name="tasks")
    op.drop_table("tasks")
