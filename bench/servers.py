"""Run the SMH simulator and the dashboard under gunicorn on loopback, libraries staged."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.clients import HOST, Upstream, new_session
from bench.report import say

REPO = Path(__file__).resolve().parent.parent
MEMORY_LIBRARIES = 10
MEMORY_TASKS_PER_LIBRARY = 1000
LARGE_LIBRARY = "large"
RENDER_LIBRARY = "render-100"
RUNNING_SECONDS = 3600
# Ids per tasks.track_tasks call: it asks about all of them in one IN (...), and SQLite builds
# before 3.32 allow 999 variables a statement, later ones 32,766 by default.
TRACK_CHUNK = 900
SCRUBBED = ("DATABASE_URL", "FLASK_SECRET_KEY")
# The scenarios that poll the load-N libraries, which are staged (and warmed) only for them.
LOADED = frozenset({"pages", "proxy", "latency", "throughput"})


def load_sizes(args: argparse.Namespace) -> list[int]:
    """Return N of each load-N library to stage: none unless a scenario that polls them runs."""
    return list(args.tasks) if args.only & LOADED else []


@dataclass
class Library:
    """A media library staged for the benchmark: its tracked tasks and how many keep running."""

    id: str
    secret: str
    task_ids: list[int] = field(default_factory=list)
    running: int = 0


@dataclass
class Stack:
    """The running simulator and dashboard, with what the phases need to reach them."""

    upstream: Upstream
    base_url: str
    port: int
    dashboard: subprocess.Popen
    track: Callable[[str, list[int]], None]
    libraries: dict[str, Library]
    workers: int
    env: dict[str, str]
    database: Path


def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_process(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a server from the repository root with its output going to a log file."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_process(process: subprocess.Popen) -> None:
    """Stop a server we started, politely first."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, seconds: float = 30) -> None:
    """Wait until the URL answers 2xx; fail with the server's log if it dies or never does."""
    deadline = time.monotonic() + seconds
    probe = new_session()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(requests.RequestException):
            if probe.get(url, timeout=1).ok:
                return
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"{url} did not come up (exit code {process.poll()}):\n{tail}")


def find_workers(master: int) -> list[int]:
    """Return the pids of gunicorn's workers: the children of its master process."""
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        children += [int(pid) for pid in task.read_text().split()]
    if children:
        return children
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The command name may hold spaces; the parent pid is the second field after it.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                children.append(int(stat.parent.name))
    return children


def read_rss(pid: int) -> int:
    """Return a process's resident memory in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def write_libraries_file(path: Path, libraries: Sequence[Library]) -> None:
    """Write the SMH_LIBRARIES_FILE that both the bench and gunicorn read."""
    tables = [
        f'[[library]]\nid = "{lib.id}"\nname = "Bench {lib.id}"\nsecret = "{lib.secret}"\n'
        for lib in libraries
    ]
    path.write_text("\n".join(tables))


def stage_library(
    upstream: Upstream,
    track: Callable[[str, list[int]], None],
    library: Library,
    count: int,
    share: float,
    run_seconds: float,
) -> None:
    """Create a library's tasks upstream, a share of them running, and track them all."""
    library.running = round(count * share)
    library.task_ids = upstream.create_tasks(library.id, library.running, run_seconds)
    library.task_ids += upstream.create_tasks(library.id, count - library.running, 0)
    track(library.id, library.task_ids)


def read_checked(database: Path, library_id: str, since: float) -> tuple[int, float | None]:
    """Count a library's tasks checked at or after `since`, read-only; also return the latest."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        checked, latest = conn.execute(
            "SELECT coalesce(sum(checked_at >= ?), 0), max(checked_at) FROM tasks"
            " WHERE library_id = ?",
            (since, library_id),
        ).fetchone()
    return int(checked), latest


def wait_checked(database: Path, libraries: Sequence[Library], seconds: float) -> bool:
    """Wait until every tracked task of these libraries was checked once; False if it never was."""
    deadline = time.monotonic() + seconds
    pending = list(libraries)
    while pending and time.monotonic() < deadline:
        pending = [
            lib for lib in pending if read_checked(database, lib.id, 0)[0] < len(lib.task_ids)
        ]
        if pending:
            time.sleep(0.1)
    return not pending


def run_refresh_command(stack: Stack, library: Library, timeout: float) -> tuple[float, int]:
    """Run `flask --app app refresh` on this library alone; return its seconds and exit code.

    The environment is the dashboard's but for the libraries file, which names only this
    library, so that the command asks about no other. Its listing of every task is discarded.
    """
    only = stack.database.parent / f"{library.id}.toml"
    write_libraries_file(only, [library])
    env = stack.env | {"SMH_LIBRARIES_FILE": str(only)}
    command = [sys.executable, "-m", "flask", "--app", "app", "refresh"]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.monotonic() - started, -1
    elapsed = time.monotonic() - started
    if done.returncode:
        say(
            f"flask refresh exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
        )
    return elapsed, done.returncode


@contextlib.contextmanager
def open_store(env: dict[str, str]) -> Iterator[Callable[[str, list[int]], None]]:
    """Yield a function that tracks tasks straight in the dashboard's database."""
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    from app import create_app
    from smh_dashboard.storage import tasks

    app = create_app()

    def track(library_id: str, task_ids: list[int]) -> None:
        with app.app_context():
            for start in range(0, len(task_ids), TRACK_CHUNK):
                tasks.track_tasks(
                    library_id, task_ids[start : start + TRACK_CHUNK], "bench", time.time()
                )

    try:
        yield track
    finally:
        # Tracking never reaches SMH, so the database pool is all there is to release.
        app.extensions["store"].dispose()


@contextlib.contextmanager
def run_servers(args: argparse.Namespace, workdir: Path) -> Iterator[Stack]:
    """Start the simulator and the dashboard on loopback, and always stop both."""
    ids = [f"load-{n}" for n in args.tasks] + ["finish", LARGE_LIBRARY, RENDER_LIBRARY]
    ids += [f"mem-{i:02d}" for i in range(1, MEMORY_LIBRARIES + 1)]
    libraries = {i: Library(i, f"bench-secret-{i}") for i in ids}
    write_libraries_file(workdir / "libraries.toml", list(libraries.values()))
    sim_port, port = free_port(), free_port()
    database = workdir / "bench.sqlite3"
    sim_url, base_url = f"http://{HOST}:{sim_port}", f"http://{HOST}:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMH_", "CACHE_")) and k not in SCRUBBED
    }
    env |= {
        "SMH_LIBRARIES_FILE": str(workdir / "libraries.toml"),
        "SMH_BASE_URL": sim_url,
        "SMH_CACHE_SECONDS": str(args.cache_seconds),
        "SMH_POLL_SECONDS": str(args.poll_seconds),
        "DATABASE_URL": f"sqlite:///{database}",
        "FLASK_SECRET_KEY": secrets.token_hex(16),
    }
    sim_command = [
        sys.executable,
        "-m",
        "smh_dashboard.smh.simulator",
        "--host",
        HOST,
        "--port",
        str(sim_port),
    ]
    for lib in libraries.values():
        sim_command += ["--library", f"{lib.id}:{lib.secret}"]
    gunicorn_command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        "warning",
        "app:create_app()",
    ]
    processes: list[subprocess.Popen] = []
    upstream = Upstream(sim_url, new_session())
    try:
        say(f"starting the SMH simulator on {sim_url}")
        processes.append(start_process(sim_command, env, workdir / "simulator.log"))
        wait_ready(f"{sim_url}/_sim/calls", processes[-1], workdir / "simulator.log")
        with open_store(env) as track:
            say("staging tasks upstream and tracking them")
            staged = [(libraries[f"load-{n}"], n) for n in load_sizes(args)]
            staged += [
                (libraries[i], MEMORY_TASKS_PER_LIBRARY)
                for i in ids
                if i.startswith("mem-") and "memory" in args.only
            ]
            for library, count in staged:
                stage_library(upstream, track, library, count, args.running_share, RUNNING_SECONDS)
            say(f"starting gunicorn ({args.workers} worker, {args.threads} threads) on {base_url}")
            processes.append(start_process(gunicorn_command, env, workdir / "gunicorn.log"))
            wait_ready(f"{base_url}/healthz", processes[-1], workdir / "gunicorn.log")
            yield Stack(
                upstream,
                base_url,
                port,
                processes[-1],
                track,
                libraries,
                args.workers,
                env,
                database,
            )
    finally:
        for process in reversed(processes):
            stop_process(process)
        upstream.session.close()
