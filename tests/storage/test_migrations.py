import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    text,
)

from smh_dashboard.storage import database, listings, schema, tasks

PROJECT = Path(__file__).resolve().parents[2]

# The tasks table exactly as the dashboard created it with create_all before it had migrations.
legacy = MetaData()
Table(
    "tasks",
    legacy,
    Column("library_id", String(64), primary_key=True),
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("label", String(200)),
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
    Index("ix_tasks_library_state", "library_id", "state"),
    Index("ix_tasks_library_added", "library_id", "added_at", "task_id"),
)
LEGACY_ROWS = [
    {
        "library_id": "lib1",
        "task_id": 101,
        "label": "Spring cleanup",
        "state": "done",
        "smh_status": 1,
        "delete_count": 1834,
        "results": [{"err": None, "status": 1, "deleteCount": 1834}],
        "last_answer": {"id": 101, "status": 1},
        "added_at": 1000.0,
        "first_running_at": 1003.0,
        "finished_at": 1060.0,
        "checked_at": 1060.0,
    },
    {"library_id": "lib1", "task_id": 102, "label": None, "state": "pending", "added_at": 2000.0},
]


# On PostgreSQL too, each from an empty database: the migrations are what is under test.
pytestmark = [pytest.mark.backends, pytest.mark.empty_database]


def revisions(url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalars(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()


@pytest.fixture
def legacy_database(settings):
    engine = create_engine(settings["DATABASE_URL"])
    legacy.create_all(engine)
    with engine.begin() as conn:
        for row in LEGACY_ROWS:
            conn.execute(legacy.tables["tasks"].insert(), row)
    engine.dispose()


def test_a_database_made_before_migrations_keeps_its_rows(legacy_database, request, caplog):
    app = request.getfixturevalue("app")

    with app.app_context():
        listed = listings.list_tasks("lib1", None)
        done = tasks.get_task("lib1", 101)
    assert [(t.task_id, t.label, t.state) for t in listed] == [
        (102, None, "pending"),
        (101, "Spring cleanup", "done"),
    ]
    assert done.results == [{"err": None, "status": 1, "deleteCount": 1834}]
    assert done.last_answer == {"id": 101, "status": 1}
    assert done.finished_at == 1060.0
    assert revisions(app.config["DATABASE_URL"]) == [database.head_revision()]
    assert "recorded the existing tables as revision 0001" in caplog.text


def test_a_new_database_gets_the_schema_store_describes(app):
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    engine.dispose()
    assert revisions(app.config["DATABASE_URL"]) == [database.head_revision()]


def test_flask_db_upgrade_is_idempotent(runner, app):
    head = database.head_revision()
    for _ in range(2):
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"at revision {head} (head), nothing to upgrade" in result.output

    current = runner.invoke(args=["db", "current"])
    assert current.exit_code == 0, current.output
    assert current.output == f"{head} (head)\n"
    assert revisions(app.config["DATABASE_URL"]) == [head]


def test_an_upgrade_before_start_adopts_a_database_made_before_migrations(
    legacy_database, settings
):
    # As a deploy script would, before any worker starts on the database.
    engine = database.open_engine(settings["DATABASE_URL"])
    first = database.upgrade_schema(engine)
    again = database.upgrade_schema(engine)
    engine.dispose()

    head = database.head_revision()
    assert (first.adopted, first.before, first.after) == (True, "0001", head)
    assert (again.adopted, again.before, again.after) == (False, head, head)
    assert revisions(settings["DATABASE_URL"]) == [head]


PROCESSES = 2
STARTER = """
import sys
from smh_dashboard.storage import database
engine = database.open_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade = database.upgrade_schema(engine)
print(upgrade.before, upgrade.after)
"""


def test_processes_starting_at_once_upgrade_a_new_database_once(database_url):
    url = database_url
    with ExitStack() as stack:
        starters = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-W", "error", "-c", STARTER, url],
                    cwd=PROJECT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(PROCESSES)
        ]
        # A barrier across processes: each has imported everything before any may go on.
        for starter in starters:
            assert starter.stdout.readline() == "ready\n", starter.communicate()[1]
        for starter in starters:
            starter.stdin.write("go\n")
            starter.stdin.flush()
        finished = [starter.communicate(timeout=30) for starter in starters]

    head = database.head_revision()
    for starter, (_, err) in zip(starters, finished, strict=True):
        assert starter.returncode == 0, err
    assert sorted(out for out, _ in finished) == sorted(
        [f"None {head}\n"] + [f"{head} {head}\n"] * (PROCESSES - 1)
    )
    assert revisions(database.open_engine(url).url) == [head]


def test_threads_starting_at_once_upgrade_a_new_database_once(database_url):
    url = database_url
    barrier = threading.Barrier(4)
    outcomes, errors = [], []

    def start():
        engine = database.open_engine(url)
        barrier.wait()
        try:
            upgrade = database.upgrade_schema(engine)
            outcomes.append((upgrade.before, upgrade.after))
        except Exception as error:
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    head = database.head_revision()
    assert errors == []
    assert sorted(outcomes, key=str) == [(head, head)] * 3 + [(None, head)]
    assert revisions(url) == [head]


def test_later_revisions_add_their_tables_keeping_tasks(database_url):
    url = database_url
    engine = database.open_engine(url)
    config = Config()
    config.set_main_option("script_location", database.MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(legacy.tables["tasks"].insert(), LEGACY_ROWS[0])
    assert revisions(url) == ["0001"]

    upgrade = database.upgrade_schema(engine)

    assert (upgrade.before, upgrade.after) == ("0001", database.head_revision())
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        kept = conn.execute(text("SELECT task_id, label FROM tasks")).all()
    engine.dispose()
    assert {"activity", "clears", "untracked", "library_versions"} <= names
    assert kept == [(101, "Spring cleanup")]
