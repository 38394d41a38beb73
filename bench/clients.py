"""Be the dashboard's and the simulator's clients: browser tabs, proxy scripts, load generators."""

from __future__ import annotations

import http.client
import math
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

HOST = "127.0.0.1"
IDS_PER_CALL = 100
HTMX_HEADERS = {"HX-Request": "true", "HX-Target": "tasks"}
# Long enough for a request that waits on a refresh to be timed rather than abandoned.
SLOW_REQUEST_SECONDS = 60.0
EVERY = re.compile(r"\bevery\s+(\d+(?:\.\d+)?)(ms|s|m)?\b")


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


@dataclass(frozen=True)
class Sample:
    """One timed request: when it went out (Unix seconds), how long it took, whether it was 200."""

    sent: float
    seconds: float
    ok: bool


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
        task_ids: list[int] = answer.json()["taskIds"]
        return task_ids

    def count_task_queries(self) -> int:
        """Return how many task queries the dashboard has sent so far."""
        answer = self.session.get(f"{self.url}/_sim/calls", timeout=10)
        answer.raise_for_status()
        calls: int = answer.json()["calls"].get("task.query", 0)
        return calls


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
                elif index == 0 and answer.status_code != 204:
                    # A 204 (nothing new) leaves the element, and so its pollers, as they were.
                    replacement = find_pollers(answer.text)
            pollers = replacement
            if not pollers:
                log.stopped_at = time.monotonic()
    except requests.RequestException:
        log.errors += 1
    finally:
        session.close()


def open_pages(
    base_url: str, library_id: str, pages: int, seconds: float, poll: float
) -> tuple[list[PageLog], float, float]:
    """Open pages staggered over one poll interval; return their logs and the span they ran."""
    start = time.monotonic() + 0.2
    logs = [PageLog() for _ in range(pages)]
    rounds = max(1, int(seconds // poll))
    deadline = start + seconds + 2 * poll
    threads = [
        threading.Thread(
            target=open_page,
            args=(base_url, library_id, start + i * poll / pages, rounds, deadline, log),
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


def read_script(
    base_url: str,
    library_id: str,
    task_ids: Sequence[int],
    start_at: float,
    interval: float,
    deadline: float,
    counts: list[int],
) -> None:
    """Be one script reading a library's tasks through the JSON proxy, 100 ids a call."""
    session = new_session()
    chunks = [task_ids[i : i + IDS_PER_CALL] for i in range(0, len(task_ids), IDS_PER_CALL)]
    time.sleep(max(0.0, start_at - time.monotonic()))
    try:
        for _round in range(int((deadline - start_at) / interval) + 1):
            if time.monotonic() >= deadline:
                break
            for chunk in chunks:
                ids = ",".join(map(str, chunk))
                answer = session.get(f"{base_url}/api/v1/task/{library_id}/{ids}", timeout=30)
                counts[0 if answer.ok else 1] += 1
            time.sleep(interval)
    except requests.RequestException:
        counts[1] += 1
    finally:
        session.close()


def time_requests(
    url: str,
    headers: dict[str, str],
    start_at: float,
    count: int,
    spacing: float,
    deadline: float,
    samples: list[Sample],
) -> None:
    """Be one sequential client: GET a URL `count` times, `spacing` seconds apart, timing each."""
    session = new_session()
    try:
        for index in range(count):
            due = start_at + index * spacing
            if max(due, time.monotonic()) >= deadline:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            sent, started = time.time(), time.perf_counter()
            try:
                answer = session.get(url, headers=headers, timeout=SLOW_REQUEST_SECONDS)
                ok = answer.status_code == 200
            except requests.RequestException:
                ok = False
            samples.append(Sample(sent, time.perf_counter() - started, ok))
    finally:
        session.close()


@dataclass(frozen=True)
class Timed:
    """One timed answer: seconds, status, body, its size on the wire with headers, and whether
    it was a poll's rows-only answer (parts swapped in by id, the section left in place)."""

    seconds: float
    status: int
    body: bytes
    wire_bytes: int
    rows_only: bool = False
    encoding: str | None = None


def get_timed(connection: http.client.HTTPConnection, path: str) -> tuple[float, bytes]:
    """GET a path on a kept-alive connection; return the seconds it took and the body."""
    timed = fetch_timed(connection, path)
    return timed.seconds, timed.body


def fetch_timed(
    connection: http.client.HTTPConnection, path: str, headers: dict[str, str] = HTMX_HEADERS
) -> Timed:
    """GET a path on a kept-alive connection as htmx would; a 200 or a 204 (nothing new). The
    body is returned as sent: compressed if the headers asked for it and the server did."""
    for attempt in range(2):
        try:
            start = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - start
            if response.status not in (200, 204):
                raise RuntimeError(f"GET {path} answered {response.status}")
            head = f"HTTP/1.1 {response.status} {response.reason}\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in response.getheaders()
            )
            wire = len(head.encode()) + 2 + len(body)
            rows_only = response.getheader("HX-Reswap") == "none"
            encoding = response.getheader("Content-Encoding")
            return Timed(elapsed, response.status, body, wire, rows_only, encoding)
        except (http.client.HTTPException, ConnectionError):
            # gunicorn closes idle keep-alive connections after 2 s; open a new one once.
            connection.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


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
