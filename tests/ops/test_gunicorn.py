"""The production command, run for real: gunicorn with the checked-in gunicorn.conf.py."""

import glob
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
POLL = "/libraries/lib1/rows"
POLLS = "dashboard_polls_total"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def polls_in(scrape_text):
    """Return the poll count of POLL's endpoint in a /metrics answer."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape_text)
        for sample in family.samples
        if sample.name == POLLS and sample.labels["endpoint"] == "libraries.library_rows"
    )


def polls_by_worker(directory):
    """Return each worker's own poll count, read from the file it keeps its counters in."""
    counts = {}
    for path in glob.glob(os.path.join(directory, "counter_*.db")):
        pid = path.rsplit("_", 1)[1].removesuffix(".db")
        counts[pid] = sum(
            sample.value
            for metric in MultiProcessCollector.merge([path])
            for sample in metric.samples
            if sample.name == POLLS
        )
    return counts


@pytest.fixture
def gunicorn(upstream, secret, tmp_path):
    """Start `gunicorn -c gunicorn.conf.py 'app:create_app()'` with two workers on loopback."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    environment = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SMH_LIBRARY_ID": "lib1",
        "SMH_LIBRARY_SECRET": secret,
        "SMH_BASE_URL": upstream.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dashboard.sqlite3'}",
        "FLASK_SECRET_KEY": "test-secret-key",
        "METRICS": "open",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                pytest.fail(f"gunicorn stopped: {log.read_text()}")
            try:
                requests.get(f"{base_url}/healthz", timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        yield base_url, str(metrics_dir)
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_gunicorn_serves_and_metrics_add_up_every_workers_polls(gunicorn):
    base_url, metrics_dir = gunicorn
    page = requests.get(f"{base_url}/libraries/lib1", timeout=10)
    assert page.status_code == 200
    assert "lib1" in page.text
    assert page.headers["Server"].startswith("gunicorn")
    assert len(page.headers["X-Request-Id"]) == 32

    made = 0
    with ThreadPoolExecutor(16) as pool:
        # The kernel hands connections to whichever worker accepts first: poll in bursts until
        # both workers have answered some, so that no single worker's count could pass.
        for _ in range(50):
            answers = list(pool.map(lambda _: requests.get(base_url + POLL, timeout=30), range(32)))
            assert all(a.status_code == 200 for a in answers)
            made += len(answers)
            if sum(1 for n in polls_by_worker(metrics_dir).values() if n > 0) >= 2:
                break
    scraped = requests.get(f"{base_url}/metrics", timeout=10).text

    by_worker = polls_by_worker(metrics_dir)
    assert sum(1 for n in by_worker.values() if n > 0) == 2
    assert sum(by_worker.values()) == made
    assert polls_in(scraped) == made
    assert 'dashboard_tracked_tasks{state="running"} 0.0' in scraped
