"""The dashboard's own record of tracked tasks, in the database DATABASE_URL names."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    false,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement

from smh_dashboard.domain import inputs, libraries, states
from smh_dashboard.smh import client as smh

# How long opening a PostgreSQL connection may take before the database counts as down.
DATABASE_CONNECT_SECONDS = 3
# The longest "who" kept (a signed-in name, or the client address when there is no sign-in).
MAX_WHO_LENGTH = 200

metadata = MetaData()
tasks = Table(
    "tasks",
    metadata,
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), primary_key=True),
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("label", String(inputs.MAX_LABEL_LENGTH)),
    Column("state", String(16), nullable=False),
    Column("smh_status", Integer),
    Column("delete_count", BigInteger),
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
activity = Table(
    "activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), nullable=False),
    Column("at", Float, nullable=False),
    Column("who", String(MAX_WHO_LENGTH), nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("task_id", BigInteger),
    Column("message", String(1000), nullable=False),
    Column("smh_status", Integer),
    Column("smh_code", String(64)),
    Column("request_id", String(128)),
    Index("ix_activity_library_id", "library_id", "id"),
)
# One row per library: the tasks its last untrack removed, whole, so that it can be undone.
untracked = Table(
    "untracked",
    metadata,
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), primary_key=True),
    Column("at", Float, nullable=False),
    Column("who", String(MAX_WHO_LENGTH), nullable=False),
    Column("rows", JSON, nullable=False),
)
# One row per library: the last clear the dashboard let start, so that every process and every
# restart refuses a second one within SMH's minute (see clears.py).
clears = Table(
    "clears",
    metadata,
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), primary_key=True),
    Column("claimed_at", Float, nullable=False),
    Column("claimed_by", String(MAX_WHO_LENGTH), nullable=False),
    Column("task_id", BigInteger),
)
# One row per library that ever changed: `version` goes up in the same transaction as every
# write that changes what its pages show (a poll compares it before rendering anything), and
# `checked_at` is when SMH was last asked about any of its tasks.
library_versions = Table(
    "library_versions",
    metadata,
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("checked_at", Float),
)


@dataclass(frozen=True)
class LibraryVersion:
    """How far a library's shown record has changed: a counter, and when SMH was last asked."""

    version: int
    checked_at: float | None


@dataclass(frozen=True)
class Task:
    """One tracked task as the dashboard last knew it; times are Unix seconds."""

    library_id: str
    task_id: int
    label: str | None
    state: str
    smh_status: int | None
    delete_count: int | None
    results: list | None
    last_answer: dict | None
    added_at: float
    missing_since: float | None
    first_running_at: float | None
    finished_at: float | None
    checked_at: float | None
    version: int = 0

    @property
    def is_polled(self) -> bool:
        """Tell whether the dashboard still asks SMH about this task."""
        return self.state in states.POLLED

    @property
    def error(self) -> str | None:
        """Return what SMH said went wrong, from its result entries, or None if it said nothing."""
        errors = [r["err"] for r in self.results or () if isinstance(r, dict) and r.get("err")]
        return "; ".join(dict.fromkeys(errors)) or None

    @property
    def can_recheck(self) -> bool:
        """Tell whether a person may ask for another check (SMH did not know it, or oddly)."""
        return self.state in states.RECHECKABLE


FIRST_REVISION = "0001"
MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# Any fixed number will do, as long as every process of the dashboard uses the same one.
_SCHEMA_LOCK_KEY = 0x534D4844
# Alembic keeps its running context in module globals: one migration at a time per process.
_schema_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Open the database named by DATABASE_URL and bring its schema up to the newest revision."""
    engine = open_engine(app.config["DATABASE_URL"])
    try:
        upgrade = upgrade_schema(engine)
    except OperationalError as error:
        # The first line says why ("connection refused"); the rest would be driver noise.
        where = engine.url.render_as_string(hide_password=True)
        raise SystemExit(
            f"Database error: cannot open {where}: {str(error.orig).splitlines()[0]}"
        ) from None
    if upgrade.adopted or upgrade.before not in (None, upgrade.after):
        # A new database is routine; an existing one whose schema changed is worth a line.
        app.logger.warning("Database schema: %s", upgrade.describe())
    app.extensions["store"] = engine


def open_engine(url: str) -> Engine:
    """Open the database at a SQLAlchemy URL, with SQLite tuned for several readers and writers.

    A PostgreSQL URL as people write it (postgresql://user:password@host:port/name) goes through
    psycopg 3, the driver the dashboard depends on.
    """
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(url.removeprefix("sqlite:///"))), exist_ok=True)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        # A server that restarted leaves dead connections in the pool: check each before use,
        # and give up on one that cannot be reached within seconds, not minutes.
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": DATABASE_CONNECT_SECONDS},
        )
    engine = create_engine(parsed)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def ping(engine: Engine) -> bool:
    """Tell whether the database answers now (for /healthz)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError:
        return False
    return True


@dataclass(frozen=True)
class SchemaUpgrade:
    """What upgrade_schema did: the revisions before and after, and whether it adopted tables
    made before migrations existed (recorded as the first revision, never re-created)."""

    before: str | None
    after: str
    adopted: bool

    def describe(self) -> str:
        """Say in one line what the upgrade did."""
        if self.before == self.after:
            done = f"at revision {self.after} (head), nothing to upgrade"
        else:
            done = f"upgraded from revision {self.before or 'none'} to {self.after} (head)"
        if self.adopted:
            return f"recorded the existing tables as revision {FIRST_REVISION}; {done}"
        return done


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """Upgrade the database to the newest revision, adopting one made before migrations."""
    config = _alembic_config()
    with _schema_lock, engine.connect() as conn:
        # Several processes may start at once: the first to take the lock upgrades, the others
        # wait for it and then find nothing left to do.
        _lock_schema(conn)
        config.attributes["connection"] = conn
        names = set(inspect(conn).get_table_names())
        adopted = "tasks" in names and "alembic_version" not in names
        if adopted:
            command.stamp(config, FIRST_REVISION)
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(config, "head")
        after = MigrationContext.configure(conn).get_current_revision()
        conn.commit()
    return SchemaUpgrade(before=before, after=after or "", adopted=adopted)


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None if it has none yet."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """Return the newest revision among the migrations."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def _lock_schema(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # pysqlite opens no transaction before DDL; BEGIN IMMEDIATE takes the write lock now,
        # so another process's check-and-upgrade cannot interleave with this one.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        # Released when the transaction ends.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})


def _tune_sqlite(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets page polls read while a poll writes; the busy timeout makes writers queue, not fail.
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    # Turning a new file to WAL needs it to itself, and SQLite fails at once rather than wait the
    # busy timeout: when several processes start on a new database, the others try again.
    deadline = time.monotonic() + 5
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.close()


def _engine() -> Engine:
    engine: Engine = current_app.extensions["store"]
    return engine


def begin() -> AbstractContextManager[Connection]:
    """Open a transaction on the dashboard's database, committed when the block ends."""
    return _engine().begin()


def upsert(table: Table) -> postgresql.Insert | sqlite.Insert:
    """Return an INSERT into `table` that can say what to do when the row's key is there."""
    if _engine().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def writes_row(
    conn: Connection,
    statement: postgresql.Insert | sqlite.Insert,
    row: dict[str, Any] | None = None,
) -> bool:
    """Run an INSERT … ON CONFLICT of one row; tell whether it inserted or updated the row."""
    if conn.dialect.name == "postgresql":
        # psycopg reports no row count for an INSERT: the row it returns is the answer.
        return conn.execute(statement.returning(literal_column("1")), row).first() is not None
    return bool(conn.execute(statement, row).rowcount)


def track_tasks(
    library_id: str,
    task_ids: Iterable[int],
    label: str | None,
    now: float,
    conn: Connection | None = None,
) -> list[int]:
    """Start tracking tasks; return the ids that were new (tracking twice is a no-op).

    Given a connection, the rows join its transaction (a clear tracks its task with its log).
    """
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return []
    rows = [
        {
            "library_id": library_id,
            "task_id": i,
            "label": label or None,
            "state": states.PENDING,
            "added_at": now,
        }
        for i in ids
    ]
    # One statement skips the ids already tracked, even by a request racing this one, and the
    # database says which rows it inserted: no read-then-write gap, so nothing to retry.
    insert_new = upsert(tasks).on_conflict_do_nothing()
    with nullcontext(conn) if conn is not None else begin() as db:
        if db.dialect.insert_executemany_returning:
            inserted = set(db.scalars(insert_new.returning(tasks.c.task_id), rows))
        else:
            # SQLite before 3.35 has no RETURNING: one row at a time, each one counted.
            inserted = {row["task_id"] for row in rows if writes_row(db, insert_new, row)}
        if inserted:
            _bump_version(db, library_id)
    return [i for i in ids if i in inserted]


def untrack_tasks(library_id: str, task_ids: Iterable[int]) -> int:
    """Stop tracking tasks and forget what was recorded about them; return how many were."""
    with _engine().begin() as conn:
        result = conn.execute(
            delete(tasks).where(tasks.c.library_id == library_id, tasks.c.task_id.in_(task_ids))
        )
        if result.rowcount:
            _bump_version(conn, library_id)
        return result.rowcount


@dataclass(frozen=True)
class Untrack:
    """A library's last untrack, which can still be undone."""

    at: float
    who: str
    task_ids: list[int]


def untrack_tasks_undoably(
    library_id: str, task_ids: Iterable[int], who: str, now: float
) -> list[int]:
    """Stop tracking tasks, keeping them whole as the library's last untrack; return their ids."""
    where = tasks.c.library_id == library_id, tasks.c.task_id.in_(list(task_ids))
    with begin() as conn:
        rows = [dict(row) for row in conn.execute(select(tasks).where(*where)).mappings()]
        if not rows:
            return []
        conn.execute(delete(tasks).where(*where))
        _bump_version(conn, library_id)
        kept = {"at": now, "who": who[:MAX_WHO_LENGTH], "rows": rows}
        conn.execute(
            upsert(untracked)
            .values(library_id=library_id, **kept)
            .on_conflict_do_update(index_elements=[untracked.c.library_id], set_=kept)
        )
    return sorted(row["task_id"] for row in rows)


def last_untrack(library_id: str) -> Untrack | None:
    """Return the library's last untrack, if it was not undone."""
    with _engine().connect() as conn:
        row = conn.execute(select(untracked).where(untracked.c.library_id == library_id)).first()
    if row is None:
        return None
    return Untrack(row.at, row.who, sorted(r["task_id"] for r in row.rows))


def undo_untrack(library_id: str) -> list[int]:
    """Track again the tasks of the library's last untrack, as they were; return their ids."""
    with begin() as conn:
        row = conn.execute(select(untracked).where(untracked.c.library_id == library_id)).first()
        if row is None:
            return []
        conn.execute(delete(untracked).where(untracked.c.library_id == library_id))
        restored = upsert(tasks).on_conflict_do_nothing()
        # Tracked again since (say, pasted back in): the newer record stays.
        back = [r["task_id"] for r in row.rows if writes_row(conn, restored, r)]
        if back:
            _bump_version(conn, library_id)
    return sorted(back)


def _bump_version(
    conn: Connection, library_id: str, changed: bool = True, checked_at: float | None = None
) -> int:
    """Count a change to what the library's pages show, note when SMH was last asked, and
    return the library's version after it (rows changed in this transaction carry it)."""
    values: dict[str, Any] = {"library_id": library_id, "version": 1}
    bumped: dict[str, Any] = {"version": library_versions.c.version + (1 if changed else 0)}
    if checked_at is not None:
        values["checked_at"] = bumped["checked_at"] = checked_at
    # One upsert: concurrent writers (threads, workers, `flask refresh`) each add theirs.
    conn.execute(
        upsert(library_versions)
        .values(values)
        .on_conflict_do_update(index_elements=[library_versions.c.library_id], set_=bumped)
    )
    # Read back in the same transaction, which holds the row from the upsert until it ends:
    # no other writer can take this version, and none can commit a later one before this one.
    return int(
        conn.execute(
            select(library_versions.c.version).where(library_versions.c.library_id == library_id)
        ).scalar_one()
    )


# Built once: every poll runs it, and building a statement costs more than running it.
_VERSIONS = select(
    library_versions.c.library_id, library_versions.c.version, library_versions.c.checked_at
).where(library_versions.c.library_id.in_(bindparam("library_ids", expanding=True)))


def get_versions(library_ids: Iterable[str]) -> dict[str, LibraryVersion]:
    """Return each library's version (0, never checked, for one that never changed)."""
    versions = {i: LibraryVersion(0, None) for i in library_ids}
    with _engine().connect() as conn:
        rows = conn.execute(_VERSIONS, {"library_ids": list(versions)})
        for library_id, version, checked_at in rows:
            versions[library_id] = LibraryVersion(version, checked_at)
    return versions


def stale_ids(library_id: str, checked_before: float) -> list[int]:
    """Return the ids of polled tasks SMH was not asked about since `checked_before`."""
    with _engine().connect() as conn:
        return list(
            conn.scalars(
                select(tasks.c.task_id)
                .where(
                    tasks.c.library_id == library_id,
                    tasks.c.state.in_(states.POLLED),
                    or_(tasks.c.checked_at.is_(None), tasks.c.checked_at <= checked_before),
                )
                .order_by(tasks.c.task_id)
            )
        )


# Built once, as every poll asks it.
_DUE = (
    select(tasks.c.task_id)
    .where(
        tasks.c.library_id == bindparam("library_id"),
        tasks.c.state.in_(states.POLLED),
        or_(tasks.c.checked_at.is_(None), tasks.c.checked_at <= bindparam("checked_before")),
    )
    .limit(1)
)


def has_due(library_id: str, checked_before: float) -> bool:
    """Tell whether any polled task was not asked about since `checked_before` (cheaply)."""
    with _engine().connect() as conn:
        due = conn.scalar(_DUE, {"library_id": library_id, "checked_before": checked_before})
    return due is not None


def untracked_ids(library_id: str, task_ids: Iterable[int]) -> list[int]:
    """Return those of these ids that the library does not track, in the order given."""
    ids = list(task_ids)
    with _engine().connect() as conn:
        tracked = set(
            conn.scalars(
                select(tasks.c.task_id).where(
                    tasks.c.library_id == library_id, tasks.c.task_id.in_(ids)
                )
            )
        )
    return [i for i in ids if i not in tracked]


def known_answers(library_id: str, task_ids: Iterable[int]) -> dict[int, dict | None]:
    """Return SMH's last answer for each of these tasks it has answered for (None: unlisted now)."""
    with _engine().connect() as conn:
        rows = conn.execute(
            select(tasks.c.task_id, tasks.c.state, tasks.c.last_answer).where(
                tasks.c.library_id == library_id,
                tasks.c.task_id.in_(list(task_ids)),
                or_(tasks.c.state == states.MISSING, tasks.c.last_answer.is_not(None)),
            )
        )
        return {
            task_id: None if state == states.MISSING else answer for task_id, state, answer in rows
        }


# Rows read and written per transaction while recording answers: short transactions let page
# reads and people's writes (track, untrack) through between them, however large the refresh.
RECORD_CHUNK = 500

# The row as the refresh read it: another process (a second worker, `flask refresh`) may have
# recorded a newer state since the read, and that one is never overwritten.
_AS_READ = (
    tasks.c.library_id == bindparam("b_library_id"),
    tasks.c.task_id == bindparam("b_task_id"),
    tasks.c.state == bindparam("b_state"),
)
_ANSWERED = (
    update(tasks)
    .where(*_AS_READ)
    .values(
        {
            name: bindparam(name)
            for name in (
                "state",
                "smh_status",
                "delete_count",
                "results",
                "last_answer",
                "missing_since",
                "first_running_at",
                "finished_at",
                "checked_at",
                "version",
            )
        }
    )
)
_UNLISTED = (
    update(tasks)
    .where(*_AS_READ)
    .values({name: bindparam(name) for name in ("state", "missing_since", "checked_at", "version")})
)


def record_statuses(
    library_id: str, statuses: Iterable[smh.TaskStatus], now: float, grace_seconds: float
) -> None:
    """Store SMH's answers for tasks still polled; one unlisted past grace becomes missing."""
    by_id = {s.task_id: s for s in statuses}
    ids = list(by_id)
    library = libraries.get_library(library_id)
    webhook = library.webhook if library else None
    for start in range(0, len(ids), RECORD_CHUNK):
        chunk = ids[start : start + RECORD_CHUNK]
        with _engine().begin() as conn:
            rows = conn.execute(
                select(tasks.c.task_id, tasks.c.state, tasks.c.missing_since, tasks.c.version)
                .add_columns(tasks.c.first_running_at, tasks.c.finished_at)
                .add_columns(*(tasks.c[name] for name in _SHOWN_ANSWER))
                .add_columns(*_TOLD_OF_END)
                .where(
                    tasks.c.library_id == library_id,
                    tasks.c.task_id.in_(chunk),
                    tasks.c.state.in_(states.POLLED),
                )
            ).mappings()
            answered: list[dict[str, Any]] = []
            unlisted: list[dict[str, Any]] = []
            ended: list[tuple[RowMapping, dict[str, Any]]] = []
            shown: list[dict[str, Any]] = []
            for row in rows.all():
                status = by_id[row["task_id"]]
                change = _observe(row, status, now, grace_seconds)
                if _shows_change(row, change):
                    shown.append(change)
                change |= {
                    "b_library_id": library_id,
                    "b_task_id": row["task_id"],
                    "b_state": row["state"],
                    "version": row["version"],
                }
                if webhook is not None and change["state"] not in states.POLLED:
                    ended.append((row, change))
                else:
                    (unlisted if status.state == states.MISSING else answered).append(change)
            if not (answered or unlisted or ended):
                continue
            version = _bump_version(conn, library_id, bool(shown), checked_at=now)
            for change in shown:
                change["version"] = version
            if answered:
                conn.execute(_ANSWERED, answered)
            if unlisted:
                conn.execute(_UNLISTED, unlisted)
            for row, change in ended:
                # One at a time, to know which updates won: only the process whose update
                # ended the task queues its message, in the same transaction.
                ending = _ANSWERED if "smh_status" in change else _UNLISTED
                if conn.execute(ending, change).rowcount == 1 and webhook is not None:
                    _queue_end(conn, library_id, row, change, webhook, now)


# What pages show of SMH's answer: the task page shows it whole, and its status, count and
# results are read from it, so comparing it (not each of them) finds every change. The check
# time is left out: it moves at every refresh, and pages show it at a coarser step.
_SHOWN_ANSWER = ("last_answer",)


def _shows_change(row: RowMapping, change: dict[str, Any]) -> bool:
    shown = ("state", "first_running_at", "finished_at", *_SHOWN_ANSWER)
    return any(name in change and change[name] != row[name] for name in shown)


def _observe(
    row: RowMapping, status: smh.TaskStatus, now: float, grace_seconds: float
) -> dict[str, Any]:
    if status.state == states.MISSING:
        # A task tracked moments ago may not be listed yet, and SMH may skip one in a single
        # answer; only after the grace period is it forgotten (SMH keeps 30 days) or never
        # existed, and its last known state stays as it was.
        missing_since = row["missing_since"] or now
        if now - missing_since >= grace_seconds:
            state = states.MISSING
        elif row["state"] == states.PENDING:
            # Never listed yet, and now SMH has answered without it: no longer counted running.
            state = states.NOT_FOUND
        else:
            state = row["state"]
        return {
            "state": state,
            "missing_since": missing_since,
            "checked_at": now,
        }
    first_running_at, finished_at = row["first_running_at"], row["finished_at"]
    if status.state == states.RUNNING and first_running_at is None:
        first_running_at = now
    if status.is_terminal and finished_at is None:
        finished_at = now
    return {
        "state": status.state,
        "smh_status": status.code,
        "delete_count": status.delete_count,
        "results": [
            {"err": r.err, "status": r.status, "deleteCount": r.delete_count}
            for r in status.results
        ]
        or None,
        "last_answer": status.raw,
        "missing_since": None,
        "first_running_at": first_running_at,
        "finished_at": finished_at,
        "checked_at": now,
    }


def recheck_task(library_id: str, task_id: int, now: float) -> bool:
    """Ask SMH again about a task it did not know or answered oddly, with a fresh grace period."""
    with _engine().begin() as conn:
        result = conn.execute(
            update(tasks)
            .where(
                tasks.c.library_id == library_id,
                tasks.c.task_id == task_id,
                tasks.c.state.in_(states.RECHECKABLE),
            )
            .values(state=states.PENDING, missing_since=None)
        )
        if result.rowcount == 1:
            version = _bump_version(conn, library_id)
            conn.execute(
                update(tasks)
                .where(tasks.c.library_id == library_id, tasks.c.task_id == task_id)
                .values(version=version)
            )
        return result.rowcount == 1


def get_task(library_id: str, task_id: int) -> Task | None:
    """Return one tracked task, or None if it is not tracked."""
    with _engine().connect() as conn:
        row = conn.execute(
            select(tasks).where(tasks.c.library_id == library_id, tasks.c.task_id == task_id)
        ).first()
    return Task(**row._mapping) if row else None


def _matching(search: str | None) -> ColumnElement[bool]:
    """Return the condition for tasks whose id is or starts with `search`, or whose label has it."""
    if not search:
        return true()
    pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    in_label = tasks.c.label.ilike(f"%{pattern}%", escape="\\")
    if not (search.isascii() and search.isdigit()):
        return in_label
    by_id = tasks.c.task_id == int(search) if int(search) <= inputs.MAX_TASK_ID else false()
    id_prefix = cast(tasks.c.task_id, String).like(f"{pattern}%", escape="\\")
    return or_(by_id, id_prefix, in_label)


# Listings read a failed task's result entries (its error) and nothing else of SMH's answer:
# decoding every row's entries and last answer on every poll would cost more than the page.
_LISTED = (
    *(c for c in tasks.c if c.name not in ("results", "last_answer")),
    type_coerce(case((tasks.c.state == states.FAILED, tasks.c.results)), JSON).label("results"),
)
_NEWEST_FIRST = (tasks.c.added_at.desc(), tasks.c.task_id.desc())


def list_tasks(
    library_id: str,
    states: Iterable[str] | None,
    offset: int = 0,
    limit: int | None = None,
    search: str | None = None,
) -> list[Task]:
    """Return one page of the library's tasks, newest first, optionally only some states or
    those matching a search (see _matching).

    A listing leaves out SMH's last answer (None here), and the result entries of every task
    but a failed one; get_task has them all.
    """
    query = _listing(_LISTED, library_id, states, search).offset(offset).limit(limit)
    with _engine().connect() as conn:
        return [Task(**row._mapping, last_answer=None) for row in conn.execute(query)]


def iter_tasks(
    library_id: str, states: Iterable[str] | None, search: str | None = None, batch: int = 500
) -> Iterator[Task]:
    """Yield all the library's tasks a listing would show, newest first, a batch per query.

    Each batch starts after the last row of the one before (not at an offset), on a connection
    of its own, so that a slow reader holds no transaction open and skips or repeats no row.
    """
    state_list = list(states) if states is not None else None
    after: tuple[float, int] | None = None
    while True:
        query = _listing(_LISTED, library_id, state_list, search)
        if after is not None:
            added_at, task_id = after
            query = query.where(
                or_(
                    tasks.c.added_at < added_at,
                    and_(tasks.c.added_at == added_at, tasks.c.task_id < task_id),
                )
            )
        with _engine().connect() as conn:
            rows = conn.execute(query.limit(batch)).all()
        yield from (Task(**row._mapping, last_answer=None) for row in rows)
        if len(rows) < batch:
            return
        after = (rows[-1].added_at, rows[-1].task_id)


def list_task_versions(
    library_id: str,
    states: Iterable[str] | None,
    offset: int,
    limit: int,
    search: str | None = None,
) -> list[tuple[int, int]]:
    """Return the (task id, version) of each task list_tasks would return, in its order."""
    values: dict[str, Any] = {"library_id": library_id, "offset": offset, "limit": limit}
    if search:
        columns = (tasks.c.task_id, tasks.c.version)
        query = _listing(columns, library_id, states, search).offset(offset).limit(limit)
    elif states is None:
        query = _VERSIONS_LISTED
    else:
        query, values["states"] = _VERSIONS_LISTED_IN_STATES, list(states)
    with _engine().connect() as conn:
        return [(i, v) for i, v in conn.execute(query, values)]


def get_listed_tasks(library_id: str, task_ids: Iterable[int]) -> list[Task]:
    """Return these tasks as a listing shows them, in the listing's order."""
    values = {"library_id": library_id, "task_ids": list(task_ids)}
    with _engine().connect() as conn:
        rows = conn.execute(_LISTED_BY_ID, values)
        return [Task(**row._mapping, last_answer=None) for row in rows]


def _listing(
    columns: Iterable[ColumnElement[Any]],
    library_id: Any,
    states: Iterable[str] | None,
    search: str | None = None,
) -> Select:
    query = select(*columns).where(tasks.c.library_id == library_id)
    if search:
        query = query.where(_matching(search))
    if states is not None:
        query = query.where(tasks.c.state.in_(states))
    return query.order_by(*_NEWEST_FIRST)


# Built once, as every poll that finds a change runs them.
_VERSIONS_LISTED = (
    _listing((tasks.c.task_id, tasks.c.version), bindparam("library_id"), None)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_VERSIONS_LISTED_IN_STATES = (
    _listing(
        (tasks.c.task_id, tasks.c.version),
        bindparam("library_id"),
        bindparam("states", expanding=True),
    )
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_LISTED_BY_ID = _listing(_LISTED, bindparam("library_id"), None).where(
    tasks.c.task_id.in_(bindparam("task_ids", expanding=True))
)
_COUNTS = (
    select(tasks.c.library_id, tasks.c.state, func.count())
    .where(tasks.c.library_id.in_(bindparam("library_ids", expanding=True)))
    .group_by(tasks.c.library_id, tasks.c.state)
)


def count_states(
    library_ids: Iterable[str], search: str | None = None
) -> dict[str, dict[str, int]]:
    """Count tasks by state for each library ({library_id: {state: n}}), only matches if asked."""
    counts: dict[str, dict[str, int]] = {i: {} for i in library_ids}
    query = _COUNTS if not search else _COUNTS.where(_matching(search))
    with _engine().connect() as conn:
        for library_id, state, n in conn.execute(query, {"library_ids": list(counts)}):
            counts[library_id][state] = n
    return counts


# Messages to send about tasks that ended, one row per end and webhook, written in the same
# transaction as the change that ended the task; whichever process delivers one claims it first
# (see notify.py). A row stays after delivery, as the task page's record of it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("library_id", String(libraries.MAX_LIBRARY_ID_LENGTH), nullable=False),
    Column("task_id", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("smh_status", Integer),
    Column("delete_count", BigInteger),
    Column("label", String(inputs.MAX_LABEL_LENGTH)),
    Column("finished_at", Float, nullable=False),
    # Which webhook (libraries.Webhook.key), where it goes as it may be shown, and its format.
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

# What a message about a task's end says beyond its new state.
_TOLD_OF_END = (tasks.c.label, tasks.c.smh_status, tasks.c.delete_count)


class DeliveryOutcome(Enum):
    """Where a message about a task's end stands."""

    WAITING = "waiting"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    GAVE_UP = "gave up"


@dataclass(frozen=True)
class Delivery:
    """One message about a task's end to one webhook, and how sending it went."""

    id: int
    library_id: str
    task_id: int
    state: str
    smh_status: int | None
    delete_count: int | None
    label: str | None
    finished_at: float
    webhook: str
    destination: str
    format: str
    created_at: float
    attempts: int
    next_at: float | None
    delivered_at: float | None
    given_up_at: float | None
    last_error: str | None
    # The holder's claim while one process sends it, None otherwise.
    claim: str | None = field(default=None, repr=False)

    @property
    def outcome(self) -> DeliveryOutcome:
        """Say where the delivery stands."""
        if self.delivered_at is not None:
            return DeliveryOutcome.DELIVERED
        if self.given_up_at is not None:
            return DeliveryOutcome.GAVE_UP
        if self.last_error is not None:
            return DeliveryOutcome.RETRYING
        return DeliveryOutcome.WAITING


def _queue_end(
    conn: Connection,
    library_id: str,
    row: RowMapping,
    change: dict[str, Any],
    webhook: libraries.Webhook,
    now: float,
) -> None:
    """Queue the message that a task ended, unless this end was queued before."""
    conn.execute(
        upsert(outbox)
        .values(
            library_id=library_id,
            task_id=row["task_id"],
            state=change["state"],
            smh_status=change.get("smh_status", row["smh_status"]),
            delete_count=change.get("delete_count", row["delete_count"]),
            label=row["label"],
            finished_at=change.get("finished_at") or now,
            webhook=webhook.key,
            destination=webhook.masked[:300],
            format=webhook.format.value,
            created_at=now,
            attempts=0,
            next_at=now,
        )
        .on_conflict_do_nothing()
    )


def claim_deliveries(
    now: float, lease_until: float, limit: int, skip: Iterable[int] = ()
) -> list[Delivery]:
    """Take up to `limit` due deliveries for this process until `lease_until`; count the try.

    One UPDATE takes rows nobody holds or whose holder's lease ran out (a process that died
    mid-send), so that two processes never take the same row at once.
    """
    claim = uuid.uuid4().hex
    due = (
        outbox.c.next_at <= now,
        or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
    )
    picked = select(outbox.c.id).where(*due).order_by(outbox.c.id).limit(limit)
    skipped = list(skip)
    if skipped:
        picked = picked.where(outbox.c.id.not_in(skipped))
    with begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(picked.scalar_subquery()), *due)
            .values(claim=claim, claimed_until=lease_until, attempts=outbox.c.attempts + 1)
        )
        rows = conn.execute(select(outbox).where(outbox.c.claim == claim).order_by(outbox.c.id))
        return [_delivery(row._mapping) for row in rows]


def finish_delivery(
    delivery: Delivery,
    now: float,
    error: str | None,
    next_at: float | None,
) -> bool:
    """Record how a claimed delivery went: sent (no error), to retry at `next_at`, or given up.

    Return False if the claim was lost meanwhile (its lease ran out and another took it).
    """
    values: dict[str, Any] = {"claim": None, "claimed_until": None, "last_error": error}
    if error is None:
        values |= {"delivered_at": now, "next_at": None}
    elif next_at is None:
        values |= {"given_up_at": now, "next_at": None}
    else:
        values |= {"next_at": next_at}
    with begin() as conn:
        result = conn.execute(
            update(outbox)
            .where(
                outbox.c.id == delivery.id,
                outbox.c.claim == delivery.claim,
                outbox.c.delivered_at.is_(None),
            )
            .values(values)
        )
        return result.rowcount == 1


def list_deliveries(library_id: str, task_id: int) -> list[Delivery]:
    """Return the messages about this task's ends, oldest first."""
    with _engine().connect() as conn:
        rows = conn.execute(
            select(outbox)
            .where(outbox.c.library_id == library_id, outbox.c.task_id == task_id)
            .order_by(outbox.c.id)
        )
        return [_delivery(row._mapping) for row in rows]


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(**{k: v for k, v in row.items() if k != "claimed_until"})
