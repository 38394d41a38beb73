"""Redis and PostgreSQL shared by several processes, going away, and coming back."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import redis
from sqlalchemy import create_engine, text
from werkzeug.security import generate_password_hash

from smh_dashboard.live import coordination
from smh_dashboard.storage import tasks
from smh_dashboard.web import throttle

pytestmark = pytest.mark.servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on loopback, to stop and start again."""

    def __init__(self, binary):
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        # Bounded: a server that never comes up fails the test instead of hanging it.
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(unavailable):
    """Start a Redis server of this test's own (redis-server must be installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    server = RedisServer(binary)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_healthz_answers_ok_while_everything_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def track(app, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, 0.0)


def test_a_second_process_reuses_the_first_ones_answers(backend, app, make_app, sim, client):
    task = sim.add_task("lib1")
    first = client.get(f"/api/v1/task/lib1/{task}")
    assert first.status_code == 200
    assert sim.calls["task.query"] == 1
    again = make_app().test_client().get(f"/api/v1/task/lib1/{task}")
    assert again.get_json() == first.get_json()
    assert sim.calls["task.query"] == 1


def test_an_outage_seen_by_one_process_holds_back_the_others(backend, app, make_app, sim, client):
    track(app, sim.add_task("lib1"))
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded", times=None)
    assert "ServerOverloaded" in client.get("/libraries/lib1").get_data(as_text=True)
    assert sim.calls["task.query"] == 1
    page = make_app().test_client().get("/libraries/lib1").get_data(as_text=True)
    assert "ServerOverloaded" in page
    assert sim.calls["task.query"] == 1


def test_redis_going_away_leaves_pages_up_and_says_so(own_redis, make_app, sim):
    other = make_app(REDIS_URL=own_redis.url)
    task = sim.add_task("lib1")
    track(other, task)
    client = other.test_client()
    page = client.get("/libraries/lib1")
    assert page.status_code == 200
    assert "Redis is out of reach" not in page.get_data(as_text=True)
    assert sim.calls["task.query"] == 1

    own_redis.stop()
    page = client.get("/libraries/lib1")
    assert page.status_code == 200
    assert "Redis is out of reach" in page.get_data(as_text=True)
    assert f'id="task-{task}"' in page.get_data(as_text=True)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json() == {"status": "unavailable", "failed": ["redis"]}

    own_redis.start()
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json() == {"status": "ok"}
    page = client.get("/libraries/lib1")
    assert page.status_code == 200
    assert "Redis is out of reach" not in page.get_data(as_text=True)


def test_the_database_going_away_is_a_503_naming_it_then_pages_return(
    backend, settings, app, engine, client
):
    assert client.get("/libraries/lib1").status_code == 200
    name = engine.url.database
    admin = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
    try:
        page = client.get("/libraries/lib1")
        assert page.status_code == 503
        shown = page.get_data(as_text=True)
        assert "The database (PostgreSQL) is busy or out of reach" in shown
        assert "Traceback" not in shown
        assert "dashpw" not in shown
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json() == {"status": "unavailable", "failed": ["database"]}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"))
        admin.dispose()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/libraries/lib1").status_code == 200


HOLDER = textwrap.dedent(
    """
    import sys, time
    from smh_dashboard.live import coordination
    shared = coordination.Shared(sys.argv[1])
    lease = coordination.Lease(shared, "refresh/lib1", seconds=float(sys.argv[2]))
    assert lease.acquire(0, started_at=time.time())
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_holders_lease_frees_itself_and_nobody_waits_forever(redis_url, backend):
    seconds = 2.0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_url, str(seconds)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        shared = coordination.Shared(redis_url)
        lease = coordination.Lease(shared, "refresh/lib1", seconds=seconds)
        # Renewed while its holder lives: a waiter gives up after its timeout.
        assert not lease.acquire(0, started_at=1.0)
        assert not lease.acquire(seconds * 2, started_at=1.0)
        assert lease.held_since() is not None
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # Nobody renews it now: it frees itself within its seconds.
        assert lease.acquire(seconds * 3, started_at=1.0)
        assert lease.held_since() == 1.0
        lease.release()
        assert lease.held_since() is None
        shared.close()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_lease_taken_over_after_expiring_is_not_released_by_its_old_holder(redis_url, backend):
    first = coordination.Lease(coordination.Shared(redis_url), "refresh/lib1", seconds=0.3)
    second = coordination.Lease(coordination.Shared(redis_url), "refresh/lib1", seconds=30)
    assert first.acquire(0, started_at=1.0)
    # The holder stalls past its lease (its renewals lost): the key expires, another takes it.
    with redis.Redis.from_url(redis_url) as client:
        client.delete(first.key)
    assert second.acquire(1, started_at=2.0)
    first.release()
    assert second.held_since() == 2.0
    assert not coordination.Lease(coordination.Shared(redis_url), "refresh/lib1").acquire(
        0, started_at=3.0
    )
    second.release()


def test_a_database_out_of_reach_at_start_stops_with_one_line_and_no_password(make_app):
    closed = f"postgresql://dash:very-secret-pw@127.0.0.1:{free_port()}/dashboard"
    with pytest.raises(SystemExit) as stopped:
        make_app(DATABASE_URL=closed)
    message = str(stopped.value)
    assert message.startswith("Database error: cannot open postgresql+psycopg://dash:***@127.0.0.1")
    assert "very-secret-pw" not in message
    assert "\n" not in message


def test_failed_sign_ins_count_across_processes(settings, make_app, tmp_path):
    users = tmp_path / "users.toml"
    users.write_text(
        '[[user]]\nname = "ana"\nrole = "operator"\n'
        f'password_hash = "{generate_password_hash("ana-pw", "pbkdf2:sha256:1000")}"\n'
    )
    first, second = (
        make_app(SMH_USERS_FILE=str(users)).test_client(),
        make_app(SMH_USERS_FILE=str(users)).test_client(),
    )
    attacker = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}, "auth": ("ana", "guess")}
    for n in range(throttle.MAX_FAILURES):
        assert (first if n % 2 else second).get("/", **attacker).status_code == 401

    for client in (first, second):
        refused = client.get("/", environ_base=attacker["environ_base"], auth=("ana", "ana-pw"))
        assert refused.status_code == 429
    assert first.get("/", auth=("ana", "ana-pw")).status_code == 200
