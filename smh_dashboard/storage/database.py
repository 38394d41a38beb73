"""The database itself: the engine DATABASE_URL names, SQLite's tuning, the schema's
migrations, transactions, and the errors that say the database is out of reach."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import Table, create_engine, event, inspect, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry

from smh_dashboard import settings

if TYPE_CHECKING:
    from alembic.config import Config

# How long opening a PostgreSQL connection may take before the database counts as down.
DATABASE_CONNECT_SECONDS = 3
# What a request meets when the database is locked, down or out of connections: worth a 503
# that asks the reader to come back, not a 500.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (OperationalError, PoolTimeout)
# Where init_app keeps the engine on the app.
EXTENSION = "store"

FIRST_REVISION = "0001"
MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# Any fixed number will do, as long as every process of the dashboard uses the same one.
_SCHEMA_LOCK_KEY = 0x534D4844
# Alembic keeps its running context in module globals: one migration at a time per process.
_schema_lock = threading.Lock()
# The execution option that marks a connection's transactions as writes (see begin()).
WRITES = "smh_writes"
# Where reading() keeps the connection that the reads of its block share.
_READING = "store_reading"


@dataclass(frozen=True)
class _Writers:
    """A SQLite database's writers in this process: one at a time, each waiting `seconds` at most.

    SQLite's own busy handler polls with growing sleeps and favours no one, so under load one
    writer can lose every round until its timeout; queued on a lock, writers take turns.
    """

    lock: threading.Lock
    seconds: float


_writers: weakref.WeakKeyDictionary[Engine, _Writers] = weakref.WeakKeyDictionary()


def init_app(app: Flask) -> None:
    """Open the database named by DATABASE_URL and bring its schema up to the newest revision."""
    engine = open_engine(app.config["DATABASE_URL"], app.config["SMH_DATABASE_BUSY_SECONDS"])
    try:
        upgrade = None if at_newest_revision(engine) else upgrade_schema(engine)
    except OperationalError as error:
        # The first line says why ("connection refused"); the rest would be driver noise.
        where = engine.url.render_as_string(hide_password=True)
        raise SystemExit(
            f"Database error: cannot open {where}: {str(error.orig).splitlines()[0]}"
        ) from None
    if upgrade and (upgrade.adopted or upgrade.before not in (None, upgrade.after)):
        # A new database is routine; an existing one whose schema changed is worth a line.
        app.logger.warning("Database schema: %s", upgrade.describe())
    app.extensions[EXTENSION] = engine


def get_engine(app: Flask | None = None) -> Engine:
    """Return the app's engine (the current app's when none is given)."""
    engine: Engine = (app or current_app).extensions[EXTENSION]
    return engine


def dispose(app: Flask) -> None:
    """Close every pooled connection of the app's engine (a test's or a fork's end)."""
    get_engine(app).dispose()


def database_kind() -> str:
    """Name the current app's kind of database, as SQLAlchemy does ("sqlite", "postgresql")."""
    return get_engine().dialect.name


def open_engine(url: str, busy_seconds: float = settings.DATABASE_BUSY_SECONDS) -> Engine:
    """Open the database at a SQLAlchemy URL, with SQLite tuned for several readers and writers.

    A PostgreSQL URL as people write it (postgresql://user:password@host:port/name) goes through
    psycopg 3, the driver the dashboard depends on. A SQLite writer waits up to `busy_seconds`
    for its turn.
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
        event.listen(engine, "connect", functools.partial(_tune_sqlite, busy_seconds))
        event.listen(engine, "begin", _begin_sqlite)
        _writers[engine] = _Writers(threading.Lock(), busy_seconds)
    return engine


def ping(engine: Engine | None = None) -> bool:
    """Tell whether the database (the current app's by default) answers now, for /healthz."""
    try:
        with (engine or get_engine()).connect() as conn:
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


def at_newest_revision(engine: Engine) -> bool:
    """Tell whether the database is at the newest migration, without loading Alembic: it costs
    each process about 10 MB, and a worker starting on a current database never needs it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        revisions = conn.scalars(text("SELECT version_num FROM alembic_version")).all()
    return revisions == [newest_revision()]


def newest_revision() -> str:
    """Return the newest migration's revision, read from its file's name: each is named for its
    revision ("0005_outbox.py" is revision "0005"), as a test checks against Alembic."""
    names = os.listdir(os.path.join(MIGRATIONS, "versions"))
    return max(name[:4] for name in names if name[:4].isdigit() and name.endswith(".py"))


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """Upgrade the database to the newest revision, adopting one made before migrations."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """Return the newest revision among the migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def _lock_schema(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # A write transaction begins with BEGIN IMMEDIATE (see _begin_sqlite), which takes the
        # write lock now, so another process's check-and-upgrade cannot interleave with this one.
        conn.execution_options(**{WRITES: True})
        conn.begin()
    elif conn.dialect.name == "postgresql":
        # Released when the transaction ends.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})


def _tune_sqlite(
    busy_seconds: float, connection: DBAPIConnection, _record: ConnectionPoolEntry
) -> None:
    # pysqlite would begin a transaction only before the first write, after the reads that
    # decided it; _begin_sqlite begins every transaction itself instead.
    connection.isolation_level = None
    # WAL lets page polls read while a poll writes; the busy timeout makes writers queue, not fail.
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={round(busy_seconds * 1000)}")
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


def _begin_sqlite(conn: Connection) -> None:
    # A writer takes the write lock as it begins, waiting the busy timeout for it: one that took
    # it only at its first write, after reading, would fail at once if another wrote meanwhile.
    writes = conn.get_execution_options().get(WRITES, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


@contextmanager
def begin() -> Iterator[Connection]:
    """Open a write transaction on the dashboard's database, committed when the block ends.

    On SQLite the writers of this process take turns first, each waiting at most the busy
    timeout (SMH_DATABASE_BUSY_SECONDS); past it, the database counts as busy (a 503).
    """
    try:
        with _write() as conn:
            yield conn
    finally:
        # Written inside reading(): the block's later reads must see it, so its transaction
        # (on SQLite, its snapshot) ends here, and its next read begins another.
        shared: Connection | None = g.get(_READING) if has_app_context() else None
        if shared is not None and shared.in_transaction():
            shared.rollback()


@contextmanager
def _write() -> Iterator[Connection]:
    engine = get_engine()
    writers = _writers.get(engine)
    if writers is None:
        with engine.begin() as conn:
            yield conn
        return
    if not writers.lock.acquire(timeout=writers.seconds):
        raise OperationalError(
            "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
        )
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITES: True})
            with conn.begin():
                yield conn
    finally:
        writers.lock.release()


def connect() -> AbstractContextManager[Connection]:
    """Open a connection to the dashboard's database for reading, closed when the block ends
    (inside `reading()`, the one its reads share)."""
    shared: Connection | None = g.get(_READING) if has_app_context() else None
    if shared is not None:
        return nullcontext(shared)
    return get_engine().connect()


@contextmanager
def reading() -> Iterator[None]:
    """Run the reads of this block on one connection: one checkout and one transaction (on
    SQLite, one snapshot) instead of one each.

    A write in the block (begin()) takes a connection of its own, and ends the block's read
    transaction as it commits, so that the reads after it see it.
    """
    if g.get(_READING) is not None:
        yield
        return
    with get_engine().connect() as conn:
        setattr(g, _READING, conn)
        try:
            yield
        finally:
            g.pop(_READING, None)


def upsert(table: Table) -> postgresql.Insert | sqlite.Insert:
    """Return an INSERT into `table` that can say what to do when the row's key is there."""
    if get_engine().dialect.name == "postgresql":
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
