"""Task versions: the library version at which each task's shown record last changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

A poll whose page still shows the same rows renders only those changed since the library
version the page was drawn at. Rows from before this revision start at 0: any page drawn since
carries a later version, so they count as unchanged until their next change.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("version", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    # SQLite drops a column by copying the table: batch mode does that where it must.
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("version")
