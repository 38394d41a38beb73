import functools
import os
import re
import secrets
import threading
import time

import pytest
import redis
from processes import FlaskProcess
from receiver import Receiver, serve
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from smh_dashboard import clock as dashboard_clock
from smh_dashboard import registry
from smh_dashboard.live import coordination
from smh_dashboard.smh.simulator import FakeClock, Simulator
from smh_dashboard.storage import database

SECRET = "lib1-very-secret-key"
OTHER_SECRET = "lib2-very-secret-key"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Keep the developer's own SMH_* settings out of every test."""
    for name in list(os.environ):
        if name.startswith(("SMH_", "CACHE_")) or name in (
            "DATABASE_URL",
            "REDIS_URL",
            "FLASK_SECRET_KEY",
            "METRICS",
            "LOG_FORMAT",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def secret():
    """Return lib1's library secret, as the simulator and the dashboard's settings know it."""
    return SECRET


@pytest.fixture
def other_secret():
    """Return lib2's library secret, for tests that configure a second library."""
    return OTHER_SECRET


@pytest.fixture
def clock(monkeypatch):
    """The simulated SMH's clock, which is the dashboard's clock too: they move together."""
    fake = FakeClock()
    monkeypatch.setattr(dashboard_clock, "now", fake)
    return fake


@pytest.fixture
def sim(clock):
    simulator = Simulator(clock)
    simulator.add_library("lib1", SECRET)
    simulator.add_library("lib2", OTHER_SECRET)
    return simulator


@pytest.fixture
def flask_processes():
    """Start `flask` commands in processes of their own (tests/processes.py); whatever the test
    did, each is killed at its end."""
    started: list[FlaskProcess] = []

    def start(settings, *argv, **kwargs) -> FlaskProcess:
        process = FlaskProcess(settings, *argv, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def history_on(sim, secret):
    """The simulator with lib1's file history on (as SMH's libraries often have it)."""
    sim.add_library("lib1", secret, history_enabled=True)
    return sim


@pytest.fixture
def upstream(sim):
    with sim.serve() as server:
        yield server


# Test modules marked `backends` run twice: on SQLite with each process coordinating alone, and on
# the PostgreSQL and Redis that TEST_DATABASE_URL and TEST_REDIS_URL name (.ci/run starts both).
# TEST_DATABASE_URL names a database whose user may create databases: each test gets a new one.
# TEST_REDIS_URL names a Redis database that each test empties.
BACKENDS = ("local", "servers")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "backends: runs on SQLite alone, then on PostgreSQL and Redis (TEST_*_URL)"
    )
    config.addinivalue_line("markers", "servers: runs only on PostgreSQL and Redis (TEST_*_URL)")
    config.addinivalue_line(
        "markers", "empty_database: on PostgreSQL, starts from an empty database, not the schema"
    )


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("servers"):
        metafunc.parametrize("backend", ["servers"], indirect=True)
    elif metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request):
    """Return which servers the dashboard stores and coordinates on: "local" or "servers"."""
    return getattr(request, "param", "local")


def in_ci():
    """Tell whether this is a CI run (CI set to any true value), where no test may skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def skip_unless_ci(reason):
    """Skip the test for a missing tool or server; in CI, where everything is installed, fail it."""
    if in_ci():
        pytest.fail(f"{reason}: CI must run every test", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unavailable():
    """Return the function that skips a test lacking a tool or server, or fails it in CI."""
    return skip_unless_ci


# Whatever skipped this session, so that a CI run that skipped anything fails (below).
skipped = []


def pytest_collectreport(report):
    if report.skipped:
        skipped.append(report.nodeid)


def pytest_runtest_logreport(report):
    # An expected failure reports as skipped too, but it ran.
    if report.skipped and not hasattr(report, "wasxfail"):
        skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if in_ci() and skipped:
        terminalreporter.write_line(
            f"CI run failed: {len(skipped)} skipped, and CI must run every test "
            f"(first: {skipped[0]})",
            red=True,
            bold=True,
        )


def server_url(name):
    """Return the test server URL in environment variable `name`; without it, skip or fail."""
    url = os.environ.get(name)
    if not url:
        skip_unless_ci(f"{name} is not set: start the server and name it (see .ci/run)")
    return url


@pytest.fixture(scope="session")
def postgres():
    """Return an engine on TEST_DATABASE_URL and a database at the newest schema to copy."""
    admin_url = make_url(server_url("TEST_DATABASE_URL")).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    template = f"test_template_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {template}"))
    # Migrating once and copying the result is ten times faster than migrating for each test;
    # test_migrations runs the migrations themselves on an empty database.
    engine = database.open_engine(admin_url.set(database=template).render_as_string(False))
    database.upgrade_schema(engine)
    engine.dispose()
    yield admin, template
    drop_database(admin, template)
    admin.dispose()


def drop_database(admin, name):
    """Drop database `name`, closing whatever still uses it.

    FORCE ends the dashboard's own leftover sessions, but an autovacuum worker that happens to be
    in the database belongs to no role, and only a superuser or a member of pg_signal_backend may
    end it (.ci/run grants that). Without it, wait for the worker to leave: it does in moments.
    """
    for attempt in range(50):
        try:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            return
        except exc.ProgrammingError:
            if attempt == 49:
                raise
            time.sleep(0.1)


@pytest.fixture
def database_url(backend, tmp_path, request):
    """Return a URL for a new database of the backend's kind, empty or at the newest schema."""
    if backend == "local":
        yield f"sqlite:///{tmp_path / 'dashboard.sqlite3'}"
        return
    admin, template = request.getfixturevalue("postgres")
    name = f"test_{secrets.token_hex(6)}"
    copy = "" if request.node.get_closest_marker("empty_database") else f" TEMPLATE {template}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}{copy}"))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    drop_database(admin, name)


@pytest.fixture
def redis_url(backend):
    """Return the URL of an empty Redis database for "servers", None (no Redis) for "local"."""
    if backend == "local":
        return None
    url = server_url("TEST_REDIS_URL")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def settings(tmp_path, upstream, database_url, redis_url):
    """The dashboard's test configuration; a test may change it before asking for `app`."""
    return {
        "TESTING": True,
        "SMH_LIBRARY_ID": "lib1",
        "SMH_LIBRARY_NAME": "Marketing assets",
        "SMH_LIBRARY_SECRET": SECRET,
        "SMH_BASE_URL": upstream.base_url,
        "SMH_RETRIES": 0,
        # Wide, so that a loaded machine never turns a slow answer into a timeout.
        "SMH_TIMEOUT": 10,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FLASK_SECRET_KEY": "test-secret-key",
        # Most tests check what a refresh records and shows, so the request runs it itself;
        # tests of the background refresh turn this on.
        "SMH_REFRESH_IN_BACKGROUND": False,
    }


def engine_of(app):
    """Return the app's database engine, through storage's own accessor."""
    return database.get_engine(app)


class AppFactory:
    """Build dashboards from the test's `settings` plus overrides, and close every one it built."""

    def __init__(self, settings):
        self.settings = settings
        self.built = []

    def __call__(self, **overrides):
        """Build a dashboard from `settings` as the test has it now, with `overrides` on top."""
        app = create_app(self.settings | overrides)
        self.built.append(app)
        return app

    def close(self, app):
        """Close one app now, as its process would on exit (a restart, say)."""
        self.built.remove(app)
        registry.close_app(app)
        coordination.close_app(app)
        database.dispose(app)

    def close_all(self):
        for app in list(self.built):
            self.close(app)


@pytest.fixture
def make_app(settings, clock):
    """Return a function that builds a dashboard from `settings` and keyword overrides.

    A test that changes `settings` does so before it builds; one that starts from no settings
    at all clears them. Every app built is closed at the end of the test, the same way.
    """
    factory = AppFactory(settings)
    yield factory
    factory.close_all()


@pytest.fixture
def app(make_app):
    """The dashboard built from `settings`."""
    return make_app()


@pytest.fixture
def engine(app):
    """The app's database engine, for tests that read or change rows directly."""
    return engine_of(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def csrf(client):
    """Return a CSRF token the way a browser gets one: from a rendered page."""
    page = client.get("/libraries/lib1").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def next_window(app, clock):
    """Return a function that moves the clock on by one cache window (SMH_CACHE_SECONDS)."""

    def expire():
        clock.advance(app.config["SMH_CACHE_SECONDS"])

    return expire


@pytest.fixture
def live_server(app):
    """Serve the dashboard over HTTP on loopback, many requests at once; return its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=functools.partial(server.serve_forever, poll_interval=0.05), daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that records what it is sent (see receiver.py)."""
    hook = Receiver()
    server = serve(hook)
    yield hook
    hook.release.set()
    server.shutdown()
    server.server_close()
