"""History jobs: guided clears (settings kept, history off, one clear, history back on), and the
settings kept when file history was switched off here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

One job under way per library at most: a unique index over library_id where the job has not
ended (both SQLite and PostgreSQL take a partial index). Sizes are literals, as in 0001.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNDER_WAY = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "history_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("library_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("restore", sa.Boolean, nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kept", sa.JSON),
        sa.Column("read_at", sa.Float),
        sa.Column("off_at", sa.Float),
        sa.Column("clear_asked_at", sa.Float),
        sa.Column("cleared_at", sa.Float),
        sa.Column("task_id", sa.BigInteger),
        sa.Column("task_ended_at", sa.Float),
        sa.Column("restored_at", sa.Float),
        sa.Column("cancelled_at", sa.Float),
        sa.Column("cancelled_by", sa.String(200)),
        sa.Column("ended_at", sa.Float),
        sa.Column("outcome", sa.String(16)),
        sa.Column("settle_tries", sa.Integer, nullable=False),
        sa.Column("restore_attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_index("ix_history_jobs_library", "history_jobs", ["library_id", "id"])
    op.create_index(
        "uq_history_jobs_under_way",
        "history_jobs",
        ["library_id"],
        unique=True,
        sqlite_where=UNDER_WAY,
        postgresql_where=UNDER_WAY,
    )
    op.create_table(
        "kept_history",
        sa.Column("library_id", sa.String(64), primary_key=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("kept_at", sa.Float, nullable=False),
        sa.Column("kept_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kept_history")
    op.drop_index("uq_history_jobs_under_way", table_name="history_jobs")
    op.drop_index("ix_history_jobs_library", table_name="history_jobs")
    op.drop_table("history_jobs")
