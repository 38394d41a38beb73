"""Two instances under gunicorn on one Redis and one PostgreSQL cost SMH what one process does."""

import math
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTANCES = 2
WORKERS = 2
CLIENTS = 16
CACHE_SECONDS = 2
# Long enough for several cache windows; each client stops at the end of it.
RUN_SECONDS = 10.0
TASKS_PER_LIBRARY = 20


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_instance(environ):
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(WORKERS), "--threads", "4", "app:create_app()"),
        ],
        cwd=REPO,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for(process, base_url):
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited: {process.stderr.read()}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("gunicorn did not answer /healthz")


def test_two_instances_ask_smh_once_per_library_per_cache_window(
    app, settings, sim, secret, other_secret, tmp_path
):
    ids = {
        "lib1": sim.add_tasks("lib1", TASKS_PER_LIBRARY, run_seconds=3600),
        "lib2": sim.add_tasks("lib2", TASKS_PER_LIBRARY, run_seconds=3600),
    }
    with app.app_context():
        for library_id, task_ids in ids.items():
            tasks.track_tasks(library_id, task_ids, None, time.time())
    listed = tmp_path / "libraries.toml"
    listed.write_text(
        f'[[library]]\nid = "lib1"\nsecret = "{secret}"\n'
        f'[[library]]\nid = "lib2"\nsecret = "{other_secret}"\n'
    )
    environ = {
        "PATH": os.environ["PATH"],
        "SMH_LIBRARIES_FILE": str(listed),
        "SMH_BASE_URL": settings["SMH_BASE_URL"],
        "SMH_CACHE_SECONDS": str(CACHE_SECONDS),
        "SMH_POLL_SECONDS": "2",
        "DATABASE_URL": settings["DATABASE_URL"],
        "REDIS_URL": settings["REDIS_URL"],
        "FLASK_SECRET_KEY": "two-instances",
    }
    instances = []
    try:
        for _ in range(INSTANCES):
            instances.append(start_instance(environ))
        for process, base_url in instances:
            wait_for(process, base_url)
        sim.reset_calls()
        paths = ["/libraries/lib1", "/libraries/lib2", "/"]
        statuses, shown = [], []
        lock = threading.Lock()
        started = time.monotonic()

        def poll(index):
            session = requests.Session()
            n = index
            while time.monotonic() - started < RUN_SECONDS:
                _, base_url = instances[n % INSTANCES]
                response = session.get(base_url + paths[n % len(paths)], timeout=30)
                with lock:
                    statuses.append(response.status_code)
                    shown.append(response.text)
                n += 1

        clients = [threading.Thread(target=poll, args=(i,)) for i in range(CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        seconds = time.monotonic() - started
    finally:
        for process, _ in instances:
            process.terminate()
            process.wait(timeout=30)
            process.stderr.close()

    assert len(statuses) > CLIENTS
    assert set(statuses) == {200}
    assert any(str(ids["lib2"][0]) in page for page in shown)
    allowed = math.ceil(seconds / CACHE_SECONDS) + 1
    for library_id, task_ids in ids.items():
        queries = [q for q in sim.task_queries if set(q) <= set(task_ids)]
        assert 1 <= len(queries) <= allowed, (library_id, len(queries), allowed)
    assert len(sim.task_queries) == sum(
        1 for q in sim.task_queries if any(set(q) <= set(t) for t in ids.values())
    )
