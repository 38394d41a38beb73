"""The dashboard's tables, declared together: what migrations build and every query reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

from smh_dashboard.domain import inputs

# The longest "who" kept (a signed-in name, or the client address when there is no sign-in).
MAX_WHO_LENGTH = 200
# The longest client address kept: an IPv6 address with its zone, or what a proxy forwarded.
MAX_ADDRESS_LENGTH = 64


def _library_id(*, primary_key: bool = False) -> Column[Any]:
    """Return the column naming the library a row belongs to (every table has one)."""
    return Column(
        "library_id",
        String(inputs.MAX_LIBRARY_ID_LENGTH),
        primary_key=primary_key,
        nullable=False,
    )


def _numbered_table(name: str, *columns: Column[Any] | Index | UniqueConstraint) -> Table:
    """Declare a table whose rows are numbered as they are written, each about one library."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        _library_id(),
        *columns,
    )


def _one_row_per_library(name: str, *columns: Column[Any]) -> Table:
    """Declare a table that holds at most one row for each library, keyed by the library."""
    return Table(name, metadata, _library_id(primary_key=True), *columns)


def _task_state() -> tuple[Column[Any], ...]:
    """Return the columns for where a task stands, as the dashboard last recorded SMH's answer."""
    return (
        Column("state", String(16), nullable=False),
        Column("smh_status", Integer),
        Column("delete_count", BigInteger),
    )


metadata = MetaData()
tasks = Table(
    "tasks",
    metadata,
    _library_id(primary_key=True),
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("label", String(inputs.MAX_LABEL_LENGTH)),
    *_task_state(),
    Column("results", JSON),
    Column("last_answer", JSON),
    Column("added_at", Float, nullable=False),
    Column("missing_since", Float),
    Column("first_running_at", Float),
    Column("finished_at", Float),
    Column("checked_at", Float),
    # The library version at which what pages show of this row last changed (see
    # library_versions): a poll sends only the rows changed since its page was drawn.
    Column("version", BigInteger, nullable=False, server_default="0"),
    Index("ix_tasks_library_state", "library_id", "state"),
    Index("ix_tasks_library_added", "library_id", "added_at", "task_id"),
)
# What people did to libraries and what SMH answered (see activity.py), kept for good.
activity = _numbered_table(
    "activity",
    Column("at", Float, nullable=False),
    Column("who", String(MAX_WHO_LENGTH), nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("task_id", BigInteger),
    Column("message", String(1000), nullable=False),
    Column("smh_status", Integer),
    Column("smh_code", String(64)),
    Column("request_id", String(128)),
    # Where the change came from (after the proxy settings); NULL from the command line.
    Column("address", String(MAX_ADDRESS_LENGTH)),
    Index("ix_activity_library_id", "library_id", "id"),
)
# One row per library: the tasks its last untrack removed, whole, so that it can be undone.
untracked = _one_row_per_library(
    "untracked",
    Column("at", Float, nullable=False),
    Column("who", String(MAX_WHO_LENGTH), nullable=False),
    Column("rows", JSON, nullable=False),
)
# One row per library: the last clear the dashboard let start, so that every process and every
# restart refuses a second one within SMH's minute (see clears.py).
clears = _one_row_per_library(
    "clears",
    Column("claimed_at", Float, nullable=False),
    Column("claimed_by", String(MAX_WHO_LENGTH), nullable=False),
    Column("task_id", BigInteger),
)
# One row per library that ever changed: `version` goes up in the same transaction as every
# write that changes what its pages show (a poll compares it before rendering anything), and
# `checked_at` is when SMH was last asked about any of its tasks.
library_versions = _one_row_per_library(
    "library_versions",
    Column("version", BigInteger, nullable=False),
    Column("checked_at", Float),
)
# Messages to send about tasks that ended, one row per end and webhook, written in the same
# transaction as the change that ended the task; whichever process delivers one claims it first
# (see outbox.py). A row stays after delivery, as the task page's record of it.
outbox = _numbered_table(
    "outbox",
    Column("task_id", BigInteger, nullable=False),
    *_task_state(),
    Column("label", String(inputs.MAX_LABEL_LENGTH)),
    Column("finished_at", Float, nullable=False),
    # Which webhook (domain/webhooks.py: Webhook.key), where it goes, masked, and its format.
    Column("webhook", String(16), nullable=False),
    Column("destination", String(300), nullable=False),
    Column("format", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    # When to try next; NULL once delivered or given up, so that only live rows are due.
    Column("next_at", Float),
    Column("claim", String(32)),
    Column("claimed_until", Float),
    Column("delivered_at", Float),
    Column("given_up_at", Float),
    Column("last_error", String(500)),
    # A task tracked again, or checked again and found in the same state, is told of once.
    UniqueConstraint("library_id", "task_id", "state", "webhook", name="uq_outbox_end"),
    Index("ix_outbox_next_at", "next_at"),
    Index("ix_outbox_task", "library_id", "task_id"),
)
# Guided clears (see history_jobs.py): the settings kept, each step's time, the clear's task and
# the restore's tries. At most one job per library has not ended (a partial unique index).
_UNDER_WAY = text("ended_at IS NULL")
history_jobs = _numbered_table(
    "history_jobs",
    Column("created_at", Float, nullable=False),
    Column("created_by", String(MAX_WHO_LENGTH), nullable=False),
    Column("address", String(MAX_ADDRESS_LENGTH)),
    # Whether to turn history back on with the kept settings once the clear's task ended.
    Column("restore", Boolean, nullable=False),
    # The step to take next (domain/guided.py: Step); `version` goes up with every write, so a
    # step is taken by whoever moves the row from the version it read.
    Column("step", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kept", JSON),
    Column("read_at", Float),
    Column("off_at", Float),
    Column("clear_asked_at", Float),
    Column("cleared_at", Float),
    Column("task_id", BigInteger),
    Column("task_ended_at", Float),
    Column("restored_at", Float),
    Column("cancelled_at", Float),
    Column("cancelled_by", String(MAX_WHO_LENGTH)),
    Column("ended_at", Float),
    Column("outcome", String(16)),
    Column("settle_tries", Integer, nullable=False),
    Column("restore_attempts", Integer, nullable=False),
    # When the step is due; while a step is in flight, when its taker counts as gone.
    Column("next_at", Float),
    Column("last_error", String(500)),
    Index("ix_history_jobs_library", "library_id", "id"),
    Index(
        "uq_history_jobs_under_way",
        "library_id",
        unique=True,
        sqlite_where=_UNDER_WAY,
        postgresql_where=_UNDER_WAY,
    ),
)
# One row per library whose file history was switched off here: the settings it had, so that one
# button can turn it back on with them.
kept_history = Table(
    "kept_history",
    metadata,
    _library_id(primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("kept_at", Float, nullable=False),
    Column("kept_by", String(MAX_WHO_LENGTH), nullable=False),
)
