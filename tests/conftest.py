import functools
import os
import re
import threading

import pytest
from werkzeug.serving import make_server

import libraries
import poller
from app import create_app
from simulator import FakeClock, Simulator

SECRET = "lib1-very-secret-key"
OTHER_SECRET = "lib2-very-secret-key"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Keep the developer's own SMH_* settings out of every test."""
    for name in list(os.environ):
        if name.startswith(("SMH_", "CACHE_")) or name in (
            "DATABASE_URL",
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
def clock():
    return FakeClock()


@pytest.fixture
def sim(clock):
    simulator = Simulator(clock)
    simulator.add_library("lib1", SECRET)
    simulator.add_library("lib2", OTHER_SECRET)
    return simulator


@pytest.fixture
def upstream(sim):
    with sim.serve() as server:
        yield server


@pytest.fixture
def settings(tmp_path, upstream):
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
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dashboard.sqlite3'}",
        "FLASK_SECRET_KEY": "test-secret-key",
        # Most tests check what a refresh records and shows, so the request runs it itself;
        # tests of the background refresh turn this on.
        "SMH_REFRESH_IN_BACKGROUND": False,
    }


@pytest.fixture
def app(settings, clock, monkeypatch):
    # The dashboard's clock and the simulated SMH's clock move together.
    monkeypatch.setattr(poller, "now", clock)
    app = create_app(settings)
    yield app
    libraries.close_app(app)
    app.extensions["store"].dispose()


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
