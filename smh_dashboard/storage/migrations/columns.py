"""Columns and steps that several revisions write alike, each exactly as they wrote it.

A revision is a snapshot: it must build what it built when it ran. So is every helper here, and
its sizes are literals for that reason; never change one that a revision uses (a new shape is a
new helper). tests/storage/test_migrations.py checks the revisions still build schema.py's tables.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op


def library_key() -> sa.Column[Any]:
    """Return the library_id column as (part of) a table's primary key."""
    return sa.Column("library_id", sa.String(64), primary_key=True)


def numbered() -> tuple[sa.Column[Any], ...]:
    """Return the columns of a table whose rows are numbered as written, each about one library."""
    return (
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("library_id", sa.String(64), nullable=False),
    )


def task_state() -> tuple[sa.Column[Any], ...]:
    """Return the columns for where a task stands: its state, SMH's status and delete count."""
    return (
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("smh_status", sa.Integer),
        sa.Column("delete_count", sa.BigInteger),
    )


def drop_column(table: str, column: str) -> None:
    """Drop a column; SQLite does that by copying the table, which batch mode does where it must."""
    with op.batch_alter_table(table) as batch:
        batch.drop_column(column)
