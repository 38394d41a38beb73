"""Benchmark the dashboard on loopback under realistic load and print the figures as Markdown.

Run from the repository root: `python bench/run.py` (about 4 minutes on 2 cores), or
`python bench/run.py --quick` for a smoke run of about a minute. It starts the SMH simulator and
the dashboard under gunicorn on free 127.0.0.1 ports, drives open pages, proxy scripts and plain
clients against them, and prints one table per figure with its floor, naive counterpart or
target beside it. It is a measurement, not a test: it exits 0 whatever the verdicts, and non-zero
only when it could not run. Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import requests

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
IDS_PER_CALL = 100
ROWS_PER_PAGE = 50
MEMORY_LIBRARIES = 10
MEMORY_TASKS_PER_LIBRARY = 1000
RUNNING_SECONDS = 3600
HTMX_HEADERS = {"HX-Request": "true", "HX-Target": "tasks"}
EVERY = re.compile(r"\bevery\s+(\d+(?:\.\d+)?)(ms|s|m)?\b")
OK, MISSED, NO_TARGET = "✓", "✗", "—"
TIMES = "\N{MULTIPLICATION SIGN}"
SCRUBBED = ("DATABASE_URL", "FLASK_SECRET_KEY")


@dataclass
class Library:
    """A media library staged for the benchmark: its tracked tasks and how many keep running."""

    id: str
    secret: str
    task_ids: list[int] = field(default_factory=list)
    running: int = 0


@dataclass
class Poller:
    """An element of a fragment that htmx would re-request on a timer."""

    url: str
    seconds: float


@dataclass
class PageLog:
    """What one simulated browser tab did: when it loaded, each poll it sent, when it stopped."""

    started: float = 0.0
    polls: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stopped_at: float | None = None
    errors: int = 0


@dataclass
class Rate:
    """Requests per second sustained by concurrent clients on one path."""

    requests: int
    seconds: float
    errors: int
    median_ms: float
    tool: str

    @property
    def per_second(self) -> float:
        """Return the sustained rate."""
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Upstream:
    """The simulated SMH, reached through its control endpoints."""

    url: str
    session: requests.Session

    def create_tasks(self, library_id: str, count: int, run_seconds: float) -> list[int]:
        """Create tasks that run for run_seconds, then finish done; return their ids."""
        if count == 0:
            return []
        body = {"libraryId": library_id, "count": count, "runSeconds": run_seconds}
        answer = self.session.post(f"{self.url}/_sim/tasks", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()["taskIds"]

    def count_task_queries(self) -> int:
        """Return how many task queries the dashboard has sent so far."""
        answer = self.session.get(f"{self.url}/_sim/calls", timeout=10)
        answer.raise_for_status()
        return answer.json()["calls"].get("task.query", 0)


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


class PollerParser(HTMLParser):
    """Collect the elements htmx would poll: an hx-get with an `every` trigger."""

    def __init__(self) -> None:
        super().__init__()
        self.pollers: list[Poller] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note the element if it polls."""
        attributes = dict(attrs)
        match = EVERY.search(attributes.get("hx-trigger") or "")
        if match and attributes.get("hx-get"):
            scale = {"ms": 0.001, "m": 60.0}.get(match.group(2) or "s", 1.0)
            self.pollers.append(Poller(attributes["hx-get"] or "", float(match.group(1)) * scale))


def find_pollers(html: str) -> list[Poller]:
    """Return the polling elements of an HTML page or fragment, outermost first."""
    parser = PollerParser()
    parser.feed(html)
    parser.close()
    return parser.pollers


def new_session() -> requests.Session:
    """Return an HTTP session that ignores proxy settings: all traffic stays on loopback."""
    session = requests.Session()
    session.trust_env = False
    return session


def say(message: str) -> None:
    """Report progress on stderr, keeping stdout for the tables."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line; --quick shrinks every scenario for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--seconds", type=float, help="T, how long each scenario runs (12)")
    parser.add_argument("--pages", help="M, open pages per scenario, comma-separated (1,10,50)")
    parser.add_argument("--tasks", help="N, tracked tasks per library (10,100,1000)")
    parser.add_argument("--running-share", type=float, default=0.2, help="share still running")
    parser.add_argument("--scripts", type=int, default=10, help="K, concurrent proxy scripts")
    parser.add_argument("--script-interval", type=float, default=1.0, help="seconds per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for req/s")
    parser.add_argument("--rate-seconds", type=float, help="seconds per req/s measurement (5)")
    parser.add_argument("--latency-seconds", type=float, help="seconds of latency sampling per N")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--cache-seconds", type=int, default=5, help="SMH_CACHE_SECONDS")
    parser.add_argument("--poll-seconds", type=float, default=3.0, help="SMH_POLL_SECONDS")
    args = parser.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds or (6.0 if quick else 12.0)
    args.pages = parse_counts(args.pages or ("1,10" if quick else "1,10,50"))
    args.tasks = parse_counts(args.tasks or ("10,100" if quick else "10,100,1000"))
    args.rate_seconds = args.rate_seconds or (2.0 if quick else 5.0)
    args.latency_seconds = args.latency_seconds or (2.0 if quick else 5.0)
    if not 0 <= args.running_share <= 1 or args.poll_seconds < 2 or args.cache_seconds < 1:
        parser.error("need 0 <= --running-share <= 1, --poll-seconds >= 2, --cache-seconds >= 1")
    return args


def parse_counts(text: str) -> list[int]:
    """Parse a comma-separated list of positive whole numbers."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"expected positive whole numbers, got {text!r}")
    return sorted(set(counts))


def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


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


@contextlib.contextmanager
def open_store(env: dict[str, str]) -> Iterator[Callable[[str, list[int]], None]]:
    """Yield a function that tracks tasks straight in the dashboard's database."""
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import store
    from app import create_app

    app = create_app()

    def track(library_id: str, task_ids: list[int]) -> None:
        with app.app_context():
            store.track_tasks(library_id, task_ids, "bench", time.time())

    try:
        yield track
    finally:
        for watch in app.extensions["watches"].values():
            watch.client.close()
        app.extensions["store"].dispose()


@contextlib.contextmanager
def run_servers(args: argparse.Namespace, workdir: Path) -> Iterator[Stack]:
    """Start the simulator and the dashboard on loopback, and always stop both."""
    ids = [f"load-{n}" for n in args.tasks] + ["finish"]
    ids += [f"mem-{i:02d}" for i in range(1, MEMORY_LIBRARIES + 1)]
    libraries = {i: Library(i, f"bench-secret-{i}") for i in ids}
    write_libraries_file(workdir / "libraries.toml", list(libraries.values()))
    sim_port, port = free_port(), free_port()
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
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "FLASK_SECRET_KEY": secrets.token_hex(16),
    }
    sim_command = [sys.executable, "simulator.py", "--host", HOST, "--port", str(sim_port)]
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
            staged = [(libraries[f"load-{n}"], n) for n in args.tasks]
            staged += [
                (libraries[i], MEMORY_TASKS_PER_LIBRARY) for i in ids if i.startswith("mem-")
            ]
            for library, count in staged:
                stage_library(upstream, track, library, count, args.running_share, RUNNING_SECONDS)
            say(f"starting gunicorn ({args.workers} worker, {args.threads} threads) on {base_url}")
            processes.append(start_process(gunicorn_command, env, workdir / "gunicorn.log"))
            wait_ready(f"{base_url}/healthz", processes[-1], workdir / "gunicorn.log")
            yield Stack(upstream, base_url, port, processes[-1], track, libraries, args.workers)
    finally:
        for process in reversed(processes):
            stop_process(process)
        upstream.session.close()


def open_page(
    base_url: str, library_id: str, start_at: float, max_rounds: int, deadline: float, log: PageLog
) -> None:
    """Be one browser tab: load the library page, then poll as htmx would, within count and time."""
    session = new_session()
    try:
        time.sleep(max(0.0, start_at - time.monotonic()))
        log.started = time.monotonic()
        page = session.get(f"{base_url}/libraries/{library_id}", timeout=30)
        pollers = find_pollers(page.text) if page.ok else []
        rounds = 0
        while pollers and rounds < max_rounds:
            wait = min(p.seconds for p in pollers)
            if time.monotonic() + wait > deadline:
                break
            time.sleep(wait)
            rounds += 1
            # The outermost poller is the fragment itself; its answer replaces every poller.
            replacement = pollers
            for index, poller in enumerate(pollers):
                sent = time.monotonic()
                answer = session.get(
                    urljoin(base_url, poller.url), headers=HTMX_HEADERS, timeout=30
                )
                log.polls.append(sent)
                log.latencies.append(time.monotonic() - sent)
                if not answer.ok:
                    log.errors += 1  # htmx 2 keeps the old element, which keeps polling
                elif index == 0:
                    replacement = find_pollers(answer.text)
            pollers = replacement
            if not pollers:
                log.stopped_at = time.monotonic()
    except requests.RequestException:
        log.errors += 1
    finally:
        session.close()


def open_pages(
    stack: Stack, library_id: str, pages: int, seconds: float, poll: float
) -> tuple[list[PageLog], float, float]:
    """Open pages staggered over one poll interval; return their logs and the span they ran."""
    start = time.monotonic() + 0.2
    logs = [PageLog() for _ in range(pages)]
    rounds = max(1, int(seconds // poll))
    deadline = start + seconds + 2 * poll
    threads = [
        threading.Thread(
            target=open_page,
            args=(stack.base_url, library_id, start + i * poll / pages, rounds, deadline, log),
            daemon=True,
        )
        for i, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 30)
    last = max([log.polls[-1] + log.latencies[-1] for log in logs if log.polls] or [start])
    return logs, start, last


def requests_per_interval(
    logs: Sequence[PageLog], poll: float, until: float | None = None
) -> float:
    """Return the polls each page made per poll interval while it had something to poll."""
    polls = intervals = 0.0
    for log in logs:
        sent = [t for t in log.polls if until is None or t < until]
        if not sent:
            continue
        polls += len(sent)
        intervals += max(sent[-1] - log.started, poll) / poll
    return polls / intervals if intervals else 0.0


def floor_queries(seconds: float, cache_seconds: int, running: int, workers: int) -> int:
    """Return the fewest upstream task queries that keep running tasks fresh for `seconds`."""
    if running == 0:
        return 0
    return math.ceil(seconds / cache_seconds) * math.ceil(running / IDS_PER_CALL) * workers


def measure_pages(stack: Stack, args: argparse.Namespace, upstream: list, browser: list) -> None:
    """Run M open pages on a library of N tasks for T seconds, for every M and N."""
    for n in args.tasks:
        library = stack.libraries[f"load-{n}"]
        for m in args.pages:
            say(f"{m} open page(s) on {n} tasks ({library.running} running) for {args.seconds:g} s")
            before = stack.upstream.count_task_queries()
            logs, start, end = open_pages(stack, library.id, m, args.seconds, args.poll_seconds)
            queries = stack.upstream.count_task_queries() - before
            span = end - start
            floor = floor_queries(span, args.cache_seconds, library.running, stack.workers)
            naive = sum(1 + len(log.polls) for log in logs) * library.running
            errors = sum(log.errors for log in logs)
            upstream.append(
                [
                    f"{m} page(s), N={n}",
                    str(library.running),
                    f"{span:.1f}",
                    str(queries),
                    f"{floor} (+1 ok)",
                    str(naive),
                    verdict(queries <= floor + 1),
                ]
            )
            rate = requests_per_interval(logs, args.poll_seconds)
            per_row = min(library.running, ROWS_PER_PAGE)
            browser.append(
                [
                    f"{m} page(s), N={n}, running",
                    f"{rate:.2f}",
                    "1",
                    str(per_row),
                    str(errors),
                    verdict(0.9 <= rate <= 1.05 and errors == 0),
                ]
            )


def read_script(
    base_url: str,
    library: Library,
    start_at: float,
    interval: float,
    deadline: float,
    counts: list[int],
) -> None:
    """Be one script reading a library's tasks through the JSON proxy, 100 ids a call."""
    session = new_session()
    chunks = [
        library.task_ids[i : i + IDS_PER_CALL]
        for i in range(0, len(library.task_ids), IDS_PER_CALL)
    ]
    time.sleep(max(0.0, start_at - time.monotonic()))
    try:
        for _round in range(int((deadline - start_at) / interval) + 1):
            if time.monotonic() >= deadline:
                break
            for chunk in chunks:
                ids = ",".join(map(str, chunk))
                answer = session.get(f"{base_url}/api/v1/task/{library.id}/{ids}", timeout=30)
                counts[0 if answer.ok else 1] += 1
            time.sleep(interval)
    except requests.RequestException:
        counts[1] += 1
    finally:
        session.close()


def measure_proxy(stack: Stack, args: argparse.Namespace, upstream: list) -> None:
    """Have K scripts read every tracked id of a library through the JSON proxy for T seconds."""
    sizes = sorted({n for n in args.tasks if n >= 100} or {max(args.tasks)})[:2]
    for n in sizes:
        library = stack.libraries[f"load-{n}"]
        say(f"{args.scripts} scripts read {n} tasks through the JSON proxy for {args.seconds:g} s")
        before = stack.upstream.count_task_queries()
        start = time.monotonic() + 0.2
        deadline = start + args.seconds
        counts = [[0, 0] for _ in range(args.scripts)]
        threads = [
            threading.Thread(
                target=read_script,
                args=(
                    stack.base_url,
                    library,
                    start + i * args.script_interval / args.scripts,
                    args.script_interval,
                    deadline,
                    counts[i],
                ),
                daemon=True,
            )
            for i in range(args.scripts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.seconds + 60)
        span = time.monotonic() - start
        queries = stack.upstream.count_task_queries() - before
        floor = floor_queries(span, args.cache_seconds, library.running, stack.workers)
        made = sum(c[0] + c[1] for c in counts)
        errors = sum(c[1] for c in counts)
        note = f" ({errors} errors)" if errors else ""
        upstream.append(
            [
                f"{args.scripts} proxy scripts, N={n}, all ids{note}",
                str(library.running),
                f"{span:.1f}",
                str(queries),
                f"{floor} (+1 ok)",
                f"{made} (direct calls)",
                verdict(queries <= floor + 1),
            ]
        )


def measure_finish(stack: Stack, args: argparse.Namespace, upstream: list, browser: list) -> None:
    """Open pages on tasks about to finish, then leave them open T seconds after all finished."""
    library = stack.libraries["finish"]
    pages, poll, cache = max(args.pages), args.poll_seconds, args.cache_seconds
    run_seconds = float(cache)
    created = time.monotonic()
    stage_library(stack.upstream, stack.track, library, 100, 1.0, run_seconds)
    finished = created + run_seconds
    settled = finished + cache + 2 * poll + 1
    end = settled + args.seconds
    say(
        f"{pages} pages on 100 tasks that finish in {run_seconds:g} s, then {args.seconds:g} s idle"
    )
    before = stack.upstream.count_task_queries()
    start = time.monotonic() + 0.2
    logs = [PageLog() for _ in range(pages)]
    rounds = math.ceil((end - start) / poll) + 1
    threads = [
        threading.Thread(
            target=open_page,
            args=(stack.base_url, library.id, start + i * poll / pages, rounds, end, log),
            daemon=True,
        )
        for i, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, settled - time.monotonic()))
    at_settle = stack.upstream.count_task_queries()
    time.sleep(max(0.0, end - time.monotonic()))
    for thread in threads:
        thread.join(30)
    after = stack.upstream.count_task_queries() - at_settle
    # One more query than the running time needs: the one that sees the tasks finished.
    running_phase = floor_queries(finished - start, cache, 100, stack.workers) + stack.workers
    upstream.append(
        [
            f"{pages} pages, 100 tasks, until they finish",
            "100",
            f"{finished - start:.1f}",
            str(at_settle - before),
            f"{running_phase} (+1 ok)",
            "—",
            verdict(at_settle - before <= running_phase + 1),
        ]
    )
    upstream.append(
        [
            f"{pages} pages, all finished, left open",
            "0",
            f"{end - settled:.1f}",
            str(after),
            "0",
            "—",
            verdict(after == 0),
        ]
    )
    rate = requests_per_interval(logs, poll, until=finished)
    tail = sum(1 for log in logs for t in log.polls if t >= settled)
    tail_rate = tail / pages / ((end - settled) / poll)
    stops = [log.stopped_at - finished if log.stopped_at else math.inf for log in logs]
    errors = sum(log.errors for log in logs)
    browser.append(
        [
            f"{pages} pages, 100 tasks, while running",
            f"{rate:.2f}",
            "1",
            str(ROWS_PER_PAGE),
            str(errors),
            verdict(0.9 <= rate <= 1.05 and errors == 0),
        ]
    )
    browser.append(
        [
            f"{pages} pages, all finished, left open {end - settled:.0f} s",
            f"{tail_rate:.2f}",
            "0",
            "—",
            "—",
            verdict(tail == 0),
        ]
    )
    worst = max(stops)
    limit = cache + 2 * poll + 1
    browser.append(
        [
            "last page stopped polling, s after the last task finished",
            f"{worst:.1f}",
            f"≤ {limit:g} (cache + 2 polls + 1)",
            "—",
            "—",
            verdict(worst <= limit),
        ]
    )


def get_timed(connection: http.client.HTTPConnection, path: str) -> tuple[float, bytes]:
    """GET a path on a kept-alive connection; return the seconds it took and the body."""
    for attempt in range(2):
        try:
            start = time.perf_counter()
            connection.request("GET", path, headers=HTMX_HEADERS)
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
            return elapsed, body
        except (http.client.HTTPException, ConnectionError):
            # gunicorn closes idle keep-alive connections after 2 s; open a new one once.
            connection.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def percentile(samples: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile of the samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def measure_latency(stack: Stack, args: argparse.Namespace) -> dict[int, dict[str, list[float]]]:
    """Time /healthz, the poll fragment and the page in turn, keeping only warm-cache samples.

    One sequential client, nothing else running: a sample is warm when the simulator counted no
    task query while it was served.
    """
    results: dict[int, dict[str, list[float]]] = {}
    connection = http.client.HTTPConnection(HOST, stack.port, timeout=30)
    try:
        for n in args.tasks:
            library_id = f"load-{n}"
            say(f"timing /healthz, the poll fragment and the page at N={n}")
            paths = {
                "healthz": "/healthz",
                "rows": f"/libraries/{library_id}/rows",
                "page": f"/libraries/{library_id}",
            }
            samples: dict[str, list[float]] = {name: [] for name in paths}
            samples["cold"] = []
            sizes = {}
            for path in paths.values():
                get_timed(connection, path)
            queries = stack.upstream.count_task_queries()
            deadline = time.monotonic() + args.latency_seconds
            for _ in range(1000):
                if time.monotonic() >= deadline:
                    break
                for name, path in paths.items():
                    elapsed, body = get_timed(connection, path)
                    sizes[name] = len(body)
                    if name == "healthz":
                        samples[name].append(elapsed)
                        continue
                    now = stack.upstream.count_task_queries()
                    samples[name if now == queries else "cold"].append(elapsed)
                    queries = now
            samples["bytes"] = [sizes["rows"], sizes["page"]]
            _, body = get_timed(connection, paths["rows"])
            samples["rows_shown"] = [body.count(b'<tr id="task-')]
            results[n] = samples
    finally:
        connection.close()
    return results


def latency_table(results: dict[int, dict[str, list[float]]]) -> list[list[str]]:
    """Turn latency samples into table rows, each against /healthz in the same run."""
    rows = []
    for n, samples in results.items():
        base = statistics.median(samples["healthz"])
        for name, label in (
            ("healthz", "/healthz"),
            ("rows", "poll fragment"),
            ("page", "library page"),
        ):
            values = samples[name]
            if not values:
                rows.append([f"N={n}", label, "no warm samples", "", "", "", "", "", NO_TARGET])
                continue
            median = statistics.median(values)
            ratio = median / base
            target, ok = "—", None
            if name == "rows" and n == 100:
                target, ok = f"≤ 3{TIMES}", ratio <= 3
            rows.append(
                [
                    f"N={n}",
                    label,
                    f"{len(values)}",
                    f"{median * 1000:.1f}",
                    f"{percentile(values, 0.95) * 1000:.1f}",
                    f"{percentile(values, 0.99) * 1000:.1f}",
                    f"{ratio:.1f}{TIMES}",
                    target,
                    verdict(ok),
                ]
            )
    return rows


def growth_table(results: dict[int, dict[str, list[float]]]) -> list[list[str]]:
    """Compare the poll fragment's cost with the rows it shows as N grows."""
    rows: list[list[str]] = []
    previous: tuple[float, int] | None = None
    for n, samples in results.items():
        if not samples["rows"]:
            continue
        cost = statistics.median(samples["rows"])
        shown = int(samples["rows_shown"][0])
        fragment, page = (int(b) for b in samples["bytes"])
        if previous is None:
            growth, target, ok = "1.0", "—", None
        else:
            cost_ratio, rows_ratio = cost / previous[0], shown / max(previous[1], 1)
            growth = f"{cost_ratio:.2f}{TIMES} (rows {rows_ratio:.1f}{TIMES})"
            target, ok = f"≤ 1.5 {TIMES} rows growth", cost_ratio <= 1.5 * rows_ratio
        rows.append(
            [
                f"N={n}",
                str(shown),
                f"{fragment / 1024:.1f}",
                f"{page / 1024:.1f}",
                f"{cost * 1000:.1f}",
                growth,
                target,
                verdict(ok),
            ]
        )
        previous = (cost, shown)
    return rows


def get_many(base_url: str, path: str, clients: int, seconds: float) -> Rate:
    """Hit one path from concurrent clients for a few seconds: wrk if installed, else threads."""
    return run_wrk(base_url + path, clients, seconds) or run_threads(
        base_url, path, clients, seconds
    )


def run_wrk(url: str, clients: int, seconds: float) -> Rate | None:
    """Measure with wrk when it is on PATH; None when it is not or its output is unexpected."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    command = [wrk, f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds:g}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    median = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output)
    if not rate or not median:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[median.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return Rate(
        round(float(rate.group(1)) * seconds),
        seconds,
        int(errors.group(1)) if errors else 0,
        float(median.group(1)) * scale,
        "wrk",
    )


def run_threads(base_url: str, path: str, clients: int, seconds: float) -> Rate:
    """Measure with keep-alive client threads, each on its own connection."""
    port = int(base_url.rsplit(":", 1)[1])
    served: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        barrier.wait()
        try:
            for _ in range(1_000_000):
                if time.monotonic() >= deadline[0]:
                    break
                try:
                    served[index].append(get_timed(connection, path)[0])
                except (OSError, RuntimeError, http.client.HTTPException):
                    errors[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - started
    latencies = [x for per_client in served for x in per_client]
    median_ms = statistics.median(latencies) * 1000 if latencies else math.nan
    return Rate(len(latencies), elapsed, sum(errors), median_ms, "Python threads")


def measure_throughput(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    """Measure sustained req/s on the poll fragment, beside /healthz through the same client."""
    n = 100 if 100 in args.tasks else max(args.tasks)
    rows = []
    pages_needed = max(args.pages)
    for label, path in (
        ("/healthz", "/healthz"),
        (f"poll fragment, N={n}", f"/libraries/load-{n}/rows"),
    ):
        say(f"{args.clients} clients on {path} for {args.rate_seconds:g} s")
        rate = get_many(stack.base_url, path, args.clients, args.rate_seconds)
        pages = rate.per_second * args.poll_seconds
        if path == "/healthz":
            target, ok = "client ceiling", None
        else:
            target = f"≥ {pages_needed / args.poll_seconds:.1f}/s ({pages_needed} pages)"
            ok = rate.per_second >= pages_needed / args.poll_seconds and rate.errors == 0
        rows.append(
            [
                label,
                f"{rate.per_second:.0f}",
                f"{rate.median_ms:.1f}",
                str(rate.errors),
                f"{pages:.0f}",
                target,
                rate.tool,
                verdict(ok),
            ]
        )
    return rows


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


def measure_memory(stack: Stack, args: argparse.Namespace, boot_rss: int) -> list[list[str]]:
    """Poll 10 libraries of 1000 tracked tasks each, then read the workers' RSS."""
    say(f"polling {MEMORY_LIBRARIES} libraries of {MEMORY_TASKS_PER_LIBRARY} tasks for memory")
    workers = find_workers(stack.dashboard.pid)
    before_rss = sum(read_rss(pid) for pid in workers)
    mem = [stack.libraries[f"mem-{i:02d}"] for i in range(1, MEMORY_LIBRARIES + 1)]
    session = new_session()
    try:
        first = stack.upstream.count_task_queries()
        started = time.monotonic()
        for library in mem:
            session.get(
                f"{stack.base_url}/libraries/{library.id}/rows", timeout=60
            ).raise_for_status()
        first_round = time.monotonic() - started
        second = stack.upstream.count_task_queries()
        started = time.monotonic()
        for library in mem:
            session.get(
                f"{stack.base_url}/libraries/{library.id}/rows", timeout=60
            ).raise_for_status()
        second_round = time.monotonic() - started
        third = stack.upstream.count_task_queries()
    finally:
        session.close()
    after_rss = sum(read_rss(pid) for pid in workers)
    tasks = MEMORY_LIBRARIES * MEMORY_TASKS_PER_LIBRARY
    running = sum(lib.running for lib in mem)
    batches = sum(math.ceil(len(lib.task_ids) / IDS_PER_CALL) for lib in mem)
    limit_mib = 128
    return [
        ["worker RSS at boot", f"{boot_rss / 1024:.1f} MiB", "—", verdict(None)],
        [
            "worker RSS before the 10 libraries were polled",
            f"{before_rss / 1024:.1f} MiB",
            "—",
            verdict(None),
        ],
        [
            f"worker RSS after polling {tasks:,} tracked tasks in {MEMORY_LIBRARIES} libraries",
            f"{after_rss / 1024:.1f} MiB",
            f"≤ {limit_mib} MiB per worker",
            verdict(after_rss / 1024 / max(len(workers), 1) <= limit_mib),
        ],
        [
            "growth from tracking and polling them",
            f"{(after_rss - before_rss) / 1024:+.1f} MiB",
            "—",
            verdict(None),
        ],
        [
            f"first round of polls: upstream queries ({first_round:.1f} s)",
            str(second - first),
            f"{batches} (every id once, 100 a call)",
            verdict(second - first <= batches),
        ],
        [
            f"second round at once ({running:,} running, {second_round:.1f} s): upstream queries",
            str(third - second),
            "0 (all cached)",
            verdict(third - second == 0),
        ],
    ]


def verdict(ok: bool | None) -> str:
    """Return the verdict mark for a figure against its target."""
    if ok is None:
        return NO_TARGET
    return OK if ok else MISSED


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine(args: argparse.Namespace) -> str:
    """Return the header line: date, CPUs, memory, Python and gunicorn versions, settings."""
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = f" ({line.split(':', 1)[1].strip()})"
                break
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date} · nproc {len(os.sched_getaffinity(0))}{cpu} · "
        f"{memory_kib / 1024**2:.1f} GiB RAM · "
        f"Python {platform.python_version()} · gunicorn {importlib.metadata.version('gunicorn')} "
        f"({args.workers} worker(s) {TIMES} {args.threads} threads) · SMH_CACHE_SECONDS="
        f"{args.cache_seconds} · SMH_POLL_SECONDS={args.poll_seconds:g} · T={args.seconds:g} s · "
        f"{args.running_share:.0%} of tasks running"
    )


def run(args: argparse.Namespace) -> str:
    """Run every scenario against one simulator and one dashboard; return the report."""
    upstream: list[list[str]] = []
    browser: list[list[str]] = []
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="smh-bench-") as tmp,
        run_servers(args, Path(tmp)) as stack,
    ):
        workers = find_workers(stack.dashboard.pid)
        boot_rss = sum(read_rss(pid) for pid in workers)
        say("warming: one poll per load library answers its pending tasks")
        for n in args.tasks:
            stack.upstream.session.get(
                f"{stack.base_url}/libraries/load-{n}/rows", timeout=60
            ).raise_for_status()
        measure_pages(stack, args, upstream, browser)
        measure_proxy(stack, args, upstream)
        measure_finish(stack, args, upstream, browser)
        latency = measure_latency(stack, args)
        throughput = measure_throughput(stack, args)
        memory = measure_memory(stack, args, boot_rss)
    command = "python bench/run.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    several = (
        " Workers share each task's freshness through the database, but each has its own lock,"
        " so at a window's start several may ask at once: the floor allows one per worker."
    )
    sections = [
        f"## Benchmark: `{command}`",
        describe_machine(args),
        "### Upstream task queries",
        format_table(
            ["Scenario", "Running", "Seconds", "Queries", "Floor", "Naive", "Verdict"], upstream
        ),
        f"Floor: ceil(seconds / SMH_CACHE_SECONDS) {TIMES} ceil(running / 100) per library with "
        f"something running; target ≤ floor + 1. Naive: one query per running task per page "
        f"request (pages), or one direct SMH call per script call (proxy). Proxy scripts ask for "
        f"every tracked id, finished ones too, 100 a call, every {args.script_interval:g} s."
        f"{several}",
        "### Browser requests per page per poll interval",
        format_table(
            [
                "Scenario",
                "Requests/page/interval",
                "Target",
                "Per-row polling",
                "Errors",
                "Verdict",
            ],
            browser,
        ),
        "Pages follow the fragment exactly as htmx would: one request per polling element per "
        "interval, and none once the fragment comes back without a trigger. Per-row polling is "
        "the naive counterpart (one request per running row shown).",
        "### Latency with a warm cache (ms), against /healthz on the same server",
        format_table(
            [
                "N",
                "Request",
                "Warm samples",
                "Median",
                "p95",
                "p99",
                "Median vs /healthz",
                "Target",
                "Verdict",
            ],
            latency_table(latency),
        ),
        "One sequential client; samples during which the dashboard asked SMH are dropped "
        f"({sum(len(s['cold']) for s in latency.values())} in all). Times include the client.",
        "### Poll fragment cost as N grows",
        format_table(
            [
                "N",
                "Rows shown",
                "Fragment KiB",
                "Page KiB",
                "Median ms",
                "Growth vs previous N",
                "Target",
                "Verdict",
            ],
            growth_table(latency),
        ),
        "### Server memory",
        format_table(["Figure", "Value", "Target", "Verdict"], memory),
        "RSS is VmRSS of the gunicorn worker(s). The issue sets no memory target; 128 MiB per "
        "worker is this benchmark's budget (four workers in a 512 MiB instance).",
        "### Sustained requests per second",
        format_table(
            [
                "Path",
                "Req/s",
                "Median ms",
                "Errors",
                f"Pages served at 1 poll / {args.poll_seconds:g} s",
                "Target",
                "Client",
                "Verdict",
            ],
            throughput,
        ),
        f"{args.clients} concurrent keep-alive clients for {args.rate_seconds:g} s. The clients "
        "run as Python threads on the same 2 cores as the server: when /healthz and the fragment "
        "come out close, the client is the bottleneck and the server's true ceiling is higher.",
        f"_Finished in {time.monotonic() - began:.0f} s._",
    ]
    return "\n\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables; non-zero only if it could not run."""
    args = parse_args(argv)
    # A plain kill must stop the servers too: turn SIGTERM into an exit that unwinds.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run(args)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except (RuntimeError, OSError, requests.RequestException) as error:
        say(f"could not run: {error}")
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
