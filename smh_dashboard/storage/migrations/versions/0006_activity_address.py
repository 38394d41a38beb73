"""Activity address: where each change in the activity log came from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The client's address as the dashboard saw it (after TRUSTED_PROXIES); NULL for a change made
on the command line, and for every line written before this revision. Sizes are literals.
"""

import sqlalchemy as sa
from alembic import op

from smh_dashboard.storage.migrations import columns

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column("activity", sa.Column("address", sa.String(64)))


def downgrade() -> None:
    columns.drop_column("activity", "address")
