"""Outbox: messages to send about tasks that ended, one per end and webhook, and how each went.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Rows are written in the same transaction as the change that ends a task, and claimed with a
lease by whichever process delivers them. Sizes are literals, as in 0001.
"""

import sqlalchemy as sa
from alembic import op

from smh_dashboard.storage.migrations import columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "outbox",
        *columns.numbered(),
        sa.Column("task_id", sa.BigInteger, nullable=False),
        *columns.task_state(),
        sa.Column("label", sa.String(200)),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("webhook", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float),
        sa.Column("claim", sa.String(32)),
        sa.Column("claimed_until", sa.Float),
        sa.Column("delivered_at", sa.Float),
        sa.Column("given_up_at", sa.Float),
        sa.Column("last_error", sa.String(500)),
        sa.UniqueConstraint("library_id", "task_id", "state", "webhook", name="uq_outbox_end"),
    )
    op.create_index("ix_outbox_next_at", "outbox", ["next_at"])
    op.create_index("ix_outbox_task", "outbox", ["library_id", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_task", table_name="outbox")
    op.drop_index("ix_outbox_next_at", table_name="outbox")
    op.drop_table("outbox")
