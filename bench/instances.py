"""The multi-instance scenario: the same page load on one process, then on two instances.

One gunicorn worker on SQLite, then two gunicorn instances of two workers each on one PostgreSQL
and one Redis, each with its own SMH simulator, libraries and tasks; 16 clients poll the library
pages round-robin across the instances. What SMH sees should not grow with the processes.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.clients import HOST, Upstream, new_session
from bench.report import TIMES, say, verdict
from bench.servers import (
    SCRUBBED,
    Library,
    free_port,
    open_store,
    start_process,
    stop_process,
    wait_ready,
    write_libraries_file,
)

CLIENTS = 16
LIBRARIES = 2
TASKS_PER_LIBRARY = 100


@dataclass(frozen=True)
class InstancesRow:
    """One layout's figures under the same load."""

    layout: str
    requests: int
    seconds: float
    errors: int
    median_ms: float
    queries: int
    floor: int

    HEADERS = (
        "layout",
        "req/s",
        "median ms",
        "errors",
        f"task queries ({LIBRARIES} libraries)",
        "floor",
        f"≤ floor + {LIBRARIES}",
    )

    def cells(self) -> tuple[str, ...]:
        """Return the table cells."""
        return (
            self.layout,
            f"{self.requests / self.seconds:.0f}",
            f"{self.median_ms:.0f}",
            str(self.errors),
            str(self.queries),
            str(self.floor),
            verdict(self.queries <= self.floor + LIBRARIES),
        )


def measure_instances(args: argparse.Namespace, workdir: Path) -> list[InstancesRow]:
    """Run the page load on one worker (SQLite), then on two instances (PostgreSQL, Redis)."""
    rows = [
        _measure(args, workdir / "single", "1 instance, 1 worker, SQLite", 1, 1, None, None),
    ]
    database = _new_database(args.database_url)
    try:
        rows.append(
            _measure(
                args,
                workdir / "multi",
                f"2 instances {TIMES} 2 workers, PostgreSQL + Redis",
                2,
                2,
                database,
                args.redis_url,
            )
        )
    finally:
        _drop_database(args.database_url, database)
    return rows


def _new_database(admin_url: str) -> str:
    name = f"bench_{secrets.token_hex(6)}"
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    engine.dispose()


def _measure(
    args: argparse.Namespace,
    workdir: Path,
    layout: str,
    instances: int,
    workers: int,
    database_url: str | None,
    redis_url: str | None,
) -> InstancesRow:
    workdir.mkdir(parents=True, exist_ok=True)
    # Fresh ids each run: a shared Redis keeps nothing from an earlier one that could help.
    suffix = secrets.token_hex(3)
    libraries = [Library(f"multi-{i}-{suffix}", f"bench-secret-{i}") for i in range(LIBRARIES)]
    write_libraries_file(workdir / "libraries.toml", libraries)
    sim_port = free_port()
    sim_url = f"http://{HOST}:{sim_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMH_", "CACHE_"))}
    env = {k: v for k, v in env.items() if k not in (*SCRUBBED, "REDIS_URL")}
    env |= {
        "SMH_LIBRARIES_FILE": str(workdir / "libraries.toml"),
        "SMH_BASE_URL": sim_url,
        "SMH_CACHE_SECONDS": str(args.cache_seconds),
        "SMH_POLL_SECONDS": str(args.poll_seconds),
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "FLASK_SECRET_KEY": secrets.token_hex(16),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    sim_command = [
        sys.executable,
        "-m",
        "smh_dashboard.smh.simulator",
        "--host",
        HOST,
        "--port",
        str(sim_port),
    ]
    for lib in libraries:
        sim_command += ["--library", f"{lib.id}:{lib.secret}"]
    processes = []
    upstream = Upstream(sim_url, new_session())
    try:
        processes.append(start_process(sim_command, env, workdir / "simulator.log"))
        wait_ready(f"{sim_url}/_sim/calls", processes[-1], workdir / "simulator.log")
        with open_store(env) as track:
            for lib in libraries:
                lib.task_ids = upstream.create_tasks(lib.id, TASKS_PER_LIBRARY, 3600)
                track(lib.id, lib.task_ids)
        base_urls = []
        for i in range(instances):
            port = free_port()
            command = [
                *(sys.executable, "-m", "gunicorn", "--workers", str(workers)),
                *("--threads", str(args.threads), "--bind", f"{HOST}:{port}"),
                *("--log-level", "warning", "app:create_app()"),
            ]
            say(f"{layout}: starting instance {i + 1} on {HOST}:{port}")
            processes.append(start_process(command, env, workdir / f"gunicorn-{i}.log"))
            base_urls.append(f"http://{HOST}:{port}")
        for i, (url, process) in enumerate(zip(base_urls, processes[1:], strict=True)):
            wait_ready(f"{url}/healthz", process, workdir / f"gunicorn-{i}.log", seconds=60)
        before = upstream.count_task_queries()
        paths = [f"/libraries/{lib.id}" for lib in libraries]
        served, errors, seconds = _poll(base_urls, paths, args.seconds)
        queries = upstream.count_task_queries() - before
    finally:
        for process in reversed(processes):
            stop_process(process)
        upstream.session.close()
    return InstancesRow(
        layout=layout,
        requests=len(served),
        seconds=seconds,
        errors=errors,
        median_ms=statistics.median(served) * 1000 if served else math.nan,
        queries=queries,
        floor=LIBRARIES * math.ceil(seconds / args.cache_seconds),
    )


def _poll(base_urls: list[str], paths: list[str], seconds: float) -> tuple[list[float], int, float]:
    """Poll the pages from CLIENTS threads, round-robin over instances and paths."""
    served: list[float] = []
    errors = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def client(index: int) -> None:
        session = new_session()
        n = index
        while time.monotonic() - started < seconds:
            url = base_urls[n % len(base_urls)] + paths[n // len(base_urls) % len(paths)]
            sent = time.monotonic()
            try:
                ok = session.get(url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                if ok:
                    served.append(time.monotonic() - sent)
                else:
                    errors[0] += 1
            n += 1
        session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return served, errors[0], time.monotonic() - started
