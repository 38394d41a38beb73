"""Activity address: where each change in the activity log came from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The client's address as the dashboard saw it (after TRUSTED_PROXIES); NULL for a change made
on the command line, and for every line written before this revision. Sizes are literals.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("activity", sa.Column("address", sa.String(64)))


def downgrade() -> None:
    # SQLite drops a column by copying the table: batch mode does that where it must.
    with op.batch_alter_table("activity") as batch:
        batch.drop_column("address")
