"""A worker starting on a current database checks its revision without loading Alembic."""

import subprocess
import sys

from smh_dashboard.storage import database


def test_the_newest_revision_is_read_from_the_file_names_as_alembic_reads_it():
    assert database.newest_revision() == database.head_revision()


def test_a_process_on_a_current_database_never_loads_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'dashboard.sqlite3'}"
    database.upgrade_schema(database.open_engine(url))
    code = (
        "import sys; from app import create_app; "
        "create_app({'DATABASE_URL': sys.argv[1], 'FLASK_SECRET_KEY': 'x'}); "
        "print('alembic' in sys.modules)"
    )
    started = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=60
    )
    assert started.stdout.strip() == "False"
