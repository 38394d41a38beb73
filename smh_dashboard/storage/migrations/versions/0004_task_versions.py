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

from smh_dashboard.storage.migrations import columns

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("version", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    columns.drop_column("tasks", "version")
