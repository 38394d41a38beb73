"""Library versions: a counter per library bumped with every change its pages show.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

A poll compares the version its page was drawn at with this one before rendering anything, and
answers without a body when they agree. Sizes are literals, as in 0001.
"""

import sqlalchemy as sa
from alembic import op

from smh_dashboard.storage.migrations import columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "library_versions",
        columns.library_key(),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("library_versions")
