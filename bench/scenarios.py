"""Measure the dashboard under each scenario and return one row type per table, headers included."""

from __future__ import annotations

import argparse
import functools
import http.client
import math
import re
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bench.clients import (
    HOST,
    HTMX_HEADERS,
    IDS_PER_CALL,
    PageLog,
    Sample,
    fetch_timed,
    find_pollers,
    get_many,
    get_timed,
    new_session,
    open_page,
    open_pages,
    read_script,
    time_requests,
)
from bench.report import MEMORY_LIMIT_MIB, NO_TARGET, TIMES, say, verdict
from bench.servers import (
    LARGE_LIBRARY,
    MEMORY_LIBRARIES,
    MEMORY_TASKS_PER_LIBRARY,
    RUNNING_SECONDS,
    Library,
    Stack,
    find_workers,
    read_checked,
    read_rss,
    run_refresh_command,
    stage_library,
    wait_checked,
)

ROWS_PER_PAGE = 50
LARGE_SAMPLES = 10
LARGE_SPACING = 0.5
LARGE_WINDOWS = 3
# How long the bench waits for a refresh of the large library before it reports it unfinished.
LARGE_WAIT_SECONDS = 120.0


def floor_queries(seconds: float, cache_seconds: int, running: int, workers: int) -> int:
    """Return the fewest upstream task queries that keep running tasks fresh for `seconds`."""
    if running == 0:
        return 0
    return math.ceil(seconds / cache_seconds) * math.ceil(running / IDS_PER_CALL) * workers


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


def percentile(samples: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile of the samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def steady(rate: float, errors: int) -> bool:
    """Return whether pages polled about once an interval, as htmx would, without errors."""
    return 0.9 <= rate <= 1.05 and errors == 0


@dataclass(frozen=True)
class UpstreamRow:
    """The task queries one scenario sent to SMH, beside the floor they may exceed by `slack`."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "Scenario",
        "Running",
        "Seconds",
        "Queries",
        "Floor",
        "Naive",
        "Verdict",
    )

    scenario: str
    running: int
    seconds: float
    queries: int
    floor: int
    naive: str
    slack: int = 1

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        floor = f"{self.floor} (+{self.slack} ok)" if self.slack else str(self.floor)
        return (
            self.scenario,
            str(self.running),
            f"{self.seconds:.1f}",
            str(self.queries),
            floor,
            self.naive,
            verdict(self.queries <= self.floor + self.slack),
        )


@dataclass(frozen=True)
class BrowserRow:
    """How often one scenario's pages polled, with `places` decimals, beside its target."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "Scenario",
        "Requests/page/interval",
        "Target",
        "Per-row polling",
        "Errors",
        "Verdict",
    )

    scenario: str
    measured: float
    target: str
    ok: bool
    per_row: int | None = None
    errors: int | None = None
    places: int = 2

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        return (
            self.scenario,
            f"{self.measured:.{self.places}f}",
            self.target,
            "—" if self.per_row is None else str(self.per_row),
            "—" if self.errors is None else str(self.errors),
            verdict(self.ok),
        )


def measure_pages(
    stack: Stack, args: argparse.Namespace
) -> tuple[list[UpstreamRow], list[BrowserRow]]:
    """Run M open pages on a library of N tasks for T seconds, for every M and N."""
    upstream: list[UpstreamRow] = []
    browser: list[BrowserRow] = []
    for n in args.tasks:
        library = stack.libraries[f"load-{n}"]
        for m in args.pages:
            say(f"{m} open page(s) on {n} tasks ({library.running} running) for {args.seconds:g} s")
            before = stack.upstream.count_task_queries()
            logs, start, end = open_pages(
                stack.base_url, library.id, m, args.seconds, args.poll_seconds
            )
            queries = stack.upstream.count_task_queries() - before
            span = end - start
            floor = floor_queries(span, args.cache_seconds, library.running, stack.workers)
            naive = sum(1 + len(log.polls) for log in logs) * library.running
            errors = sum(log.errors for log in logs)
            upstream.append(
                UpstreamRow(
                    f"{m} page(s), N={n}", library.running, span, queries, floor, str(naive)
                )
            )
            rate = requests_per_interval(logs, args.poll_seconds)
            browser.append(
                BrowserRow(
                    f"{m} page(s), N={n}, running",
                    rate,
                    "1",
                    steady(rate, errors),
                    per_row=min(library.running, ROWS_PER_PAGE),
                    errors=errors,
                )
            )
    return upstream, browser


def measure_proxy(stack: Stack, args: argparse.Namespace) -> list[UpstreamRow]:
    """Have K scripts read every tracked id of a library through the JSON proxy for T seconds."""
    rows: list[UpstreamRow] = []
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
                    library.id,
                    library.task_ids,
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
        rows.append(
            UpstreamRow(
                f"{args.scripts} proxy scripts, N={n}, all ids{note}",
                library.running,
                span,
                queries,
                floor,
                f"{made} (direct calls)",
            )
        )
    return rows


def measure_finish(
    stack: Stack, args: argparse.Namespace
) -> tuple[list[UpstreamRow], list[BrowserRow]]:
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
    upstream = [
        UpstreamRow(
            f"{pages} pages, 100 tasks, until they finish",
            100,
            finished - start,
            at_settle - before,
            running_phase,
            "—",
        ),
        UpstreamRow(
            f"{pages} pages, all finished, left open", 0, end - settled, after, 0, "—", slack=0
        ),
    ]
    rate = requests_per_interval(logs, poll, until=finished)
    tail = sum(1 for log in logs for t in log.polls if t >= settled)
    tail_rate = tail / pages / ((end - settled) / poll)
    stops = [log.stopped_at - finished if log.stopped_at else math.inf for log in logs]
    errors = sum(log.errors for log in logs)
    worst = max(stops)
    limit = cache + 2 * poll + 1
    browser = [
        BrowserRow(
            f"{pages} pages, 100 tasks, while running",
            rate,
            "1",
            steady(rate, errors),
            per_row=ROWS_PER_PAGE,
            errors=errors,
        ),
        BrowserRow(
            f"{pages} pages, all finished, left open {end - settled:.0f} s",
            tail_rate,
            "0",
            tail == 0,
        ),
        BrowserRow(
            "last page stopped polling, s after the last task finished",
            worst,
            f"≤ {limit:g} (cache + 2 polls + 1)",
            worst <= limit,
            places=1,
        ),
    ]
    return upstream, browser


@dataclass
class LatencySamples:
    """One library's timings by request, warm and cold, and the size of what its pages returned.

    `unchanged` is a poll that sends the version its page was drawn at and gets a 204;
    `changed` one sent by a page drawn just before one of its tasks finished, answered with that
    row alone; `rows` one that draws the whole section (no version sent, as on a first poll or
    when which rows show changed).
    """

    warm: dict[str, list[float]]
    cold: list[float]
    fragment_bytes: int
    page_bytes: int
    rows_shown: int
    wire: dict[str, int]
    changed_failure: str = ""


def measure_latency(stack: Stack, args: argparse.Namespace) -> dict[int, LatencySamples]:
    """Time /healthz, both kinds of poll and the page in turn, keeping only warm-cache samples.

    One sequential client, nothing else running: a sample is warm when the simulator counted no
    task query while it was served. An unchanged poll that renders after all (the library did
    change) is dropped from the unchanged samples and its new version is used from then on.
    """
    results: dict[int, LatencySamples] = {}
    connection = http.client.HTTPConnection(HOST, stack.port, timeout=30)
    try:
        for n in args.tasks:
            library_id = f"load-{n}"
            say(f"timing /healthz, the polls and the page at N={n}")
            changed, why_not = _changed_poll_path(stack, connection, library_id, args)
            if changed is None:
                say(f"could not time the one-row poll: {why_not}")
            paths = {
                "healthz": "/healthz",
                "unchanged": "",
                "changed": changed or "",
                "rows": f"/libraries/{library_id}/rows",
                "page": f"/libraries/{library_id}",
            }
            warm: dict[str, list[float]] = {name: [] for name in paths}
            cold: list[float] = []
            sizes: dict[str, int] = {}
            wire: dict[str, int] = {}
            for path in paths.values():
                if path:
                    get_timed(connection, path)
            queries = stack.upstream.count_task_queries()
            deadline = time.monotonic() + args.latency_seconds
            for _ in range(1000):
                if time.monotonic() >= deadline:
                    break
                for name, path in paths.items():
                    if not path:
                        continue
                    timed = fetch_timed(connection, path)
                    if name == "rows":
                        paths["unchanged"] = _poll_path(timed.body)
                    if name == "unchanged" and timed.status != 204:
                        paths["unchanged"] = _poll_path(timed.body)
                        continue
                    if name == "changed" and not timed.rows_only:
                        # The page's check times were due for a redraw: a whole section.
                        continue
                    sizes[name], wire[name] = len(timed.body), timed.wire_bytes
                    if name == "healthz":
                        warm[name].append(timed.seconds)
                        continue
                    now = stack.upstream.count_task_queries()
                    (warm[name] if now == queries else cold).append(timed.seconds)
                    queries = now
            _, body = get_timed(connection, paths["rows"])
            results[n] = LatencySamples(
                warm,
                cold,
                sizes["rows"],
                sizes["page"],
                body.count(b'<tr id="task-'),
                wire,
                why_not,
            )
    finally:
        connection.close()
    return results


def _changed_poll_path(
    stack: Stack, connection: http.client.HTTPConnection, library_id: str, args: argparse.Namespace
) -> tuple[str | None, str]:
    """Return a poll URL drawn just before one task on the page finished, once it has; or None
    and why no attempt got one.

    A new task, tracked at the top of the first page, runs a little over a cache window; the
    URL is taken once the page shows it running, and returned once the dashboard has recorded
    it done: each request of it is then answered with that one row, as for a page open then.
    The check times a page shows are redrawn once a minute (a whole section): each attempt
    starts early in a minute, so it ends before the next, and a spoiled one is tried again
    with another task, within CHANGED_ATTEMPTS and CHANGED_WAIT_SECONDS.
    """
    rows = f"/libraries/{library_id}/rows"
    deadline = time.monotonic() + CHANGED_WAIT_SECONDS
    failures: list[str] = []
    for _ in range(CHANGED_ATTEMPTS):
        # The minute's redraw follows the library's last check, up to a cache window late.
        into_minute = time.time() % 60
        if not args.cache_seconds + 1 <= into_minute <= 30:
            wait = (60 - into_minute + args.cache_seconds + 1) % 60
            if time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
        path, why = _one_changed_poll(stack, connection, library_id, rows, args, deadline)
        if path is not None:
            return path, ""
        failures.append(why)
        if time.monotonic() >= deadline:
            break
    tried = "; ".join(f"{i + 1}: {why}" for i, why in enumerate(failures)) or "no time left"
    return None, f"no poll of {library_id} was answered with the changed row alone ({tried})"


def _one_changed_poll(
    stack: Stack,
    connection: http.client.HTTPConnection,
    library_id: str,
    rows: str,
    args: argparse.Namespace,
    deadline: float,
) -> tuple[str | None, str]:
    (task_id,) = stack.upstream.create_tasks(library_id, 1, args.cache_seconds + 1)
    stack.track(library_id, [task_id])
    timed = fetch_timed(connection, rows)
    path, state = _poll_path(timed.body), _row_state(timed.body, task_id)
    # Drawn once it shows the task running and two polls in a row found nothing new.
    stable = 0
    while (stable < 2 or state != "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        timed = fetch_timed(connection, path)
        if timed.status == 204:
            stable += 1
            continue
        path, stable = _poll_path(timed.body), 0
        state = _row_state(timed.body, task_id) or state
    if state != "running":
        return None, f"task {task_id} was never seen running (last seen {state})"
    while time.monotonic() < deadline:
        time.sleep(0.3)
        timed = fetch_timed(connection, path)
        if timed.status == 204:
            continue
        seen = _row_state(timed.body, task_id)
        if timed.rows_only and seen not in RUN_STATES:
            return path, ""
        if not timed.rows_only:
            return None, f"task {task_id} ended in a whole section (at :{time.time() % 60:02.0f})"
        path = _poll_path(timed.body)
    return None, f"task {task_id} did not end in time"


CHANGED_ATTEMPTS = 4
CHANGED_WAIT_SECONDS = 180.0
RUN_STATES = (None, "pending", "running")


def _row_state(fragment: bytes, task_id: int) -> str | None:
    match = re.search(rf'id="task-{task_id}".*?data-state="(\w+)"', fragment.decode(), re.S)
    return match.group(1) if match else None


def _poll_path(fragment: bytes) -> str:
    pollers = find_pollers(fragment.decode())
    if not pollers:
        raise RuntimeError("the poll fragment stopped polling during the latency measurement")
    return pollers[0].url


@dataclass(frozen=True)
class LatencyRow:
    """One request's warm-cache latency (seconds) at one N, and its ratio to /healthz."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "N",
        "Request",
        "Warm samples",
        "Median",
        "p95",
        "p99",
        "Median vs /healthz",
        "Target",
        "Verdict",
    )

    n: int
    request: str
    samples: int
    median: float = math.nan
    p95: float = math.nan
    p99: float = math.nan
    ratio: float = math.nan
    target: str = "—"
    ok: bool | None = None
    failure: str = ""

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed, in milliseconds."""
        if self.failure:
            shown = f"could not run: {self.failure}"
            return (f"N={self.n}", self.request, shown, "", "", "", "", "", NO_TARGET)
        if not self.samples:
            return (f"N={self.n}", self.request, "no warm samples", "", "", "", "", "", NO_TARGET)
        return (
            f"N={self.n}",
            self.request,
            f"{self.samples}",
            f"{self.median * 1000:.1f}",
            f"{self.p95 * 1000:.1f}",
            f"{self.p99 * 1000:.1f}",
            f"{self.ratio:.1f}{TIMES}",
            self.target,
            verdict(self.ok),
        )


def latency_rows(results: dict[int, LatencySamples]) -> list[LatencyRow]:
    """Turn latency samples into table rows, each against /healthz in the same run."""
    rows = []
    for n, samples in results.items():
        base = statistics.median(samples.warm["healthz"])
        for name, label in (
            ("healthz", "/healthz"),
            ("unchanged", "poll, nothing new (204)"),
            ("changed", "poll, one task finished (its row only)"),
            ("rows", "poll, whole section (renders)"),
            ("page", "library page"),
        ):
            values = samples.warm[name]
            if name == "changed" and samples.changed_failure:
                rows.append(LatencyRow(n, label, 0, failure=samples.changed_failure))
                continue
            if not values:
                rows.append(LatencyRow(n, label, 0))
                continue
            median = statistics.median(values)
            ratio = median / base
            target, ok = "—", None
            if name == "unchanged":
                target, ok = f"≤ 1.5{TIMES}", ratio <= 1.5
            elif name == "changed" and samples.rows_shown >= ROWS_PER_PAGE:
                target, ok = f"≤ 3{TIMES} (50 rows)", ratio <= 3
            rows.append(
                LatencyRow(
                    n,
                    label,
                    len(values),
                    median,
                    percentile(values, 0.95),
                    percentile(values, 0.99),
                    ratio,
                    target,
                    ok,
                )
            )
    return rows


@dataclass(frozen=True)
class BytesRow:
    """What one poll of each kind carries at one N, on the wire with its headers, in bytes."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "N",
        "Rows shown",
        "/healthz",
        "Poll, nothing new (204)",
        "Poll, one task finished (row only)",
        "Poll, whole section (200)",
        "Target",
        "Verdict",
    )
    LIMIT: ClassVar[int] = 1000

    n: int
    rows_shown: int
    healthz: int
    unchanged: int | None
    changed: int | None
    whole: int

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        ok = None if self.unchanged is None else self.unchanged <= self.LIMIT
        return (
            f"N={self.n}",
            str(self.rows_shown),
            f"{self.healthz:,} B",
            "—" if self.unchanged is None else f"{self.unchanged:,} B",
            "—" if self.changed is None else f"{self.changed / 1024:,.1f} KiB",
            f"{self.whole / 1024:,.1f} KiB",
            f"204 ≤ {self.LIMIT:,} B",
            verdict(ok),
        )


def bytes_rows(results: dict[int, LatencySamples]) -> list[BytesRow]:
    """Return the bytes each kind of poll carried at each N, beside /healthz's."""
    return [
        BytesRow(
            n,
            samples.rows_shown,
            samples.wire["healthz"],
            samples.wire.get("unchanged"),
            samples.wire.get("changed"),
            samples.wire["rows"],
        )
        for n, samples in results.items()
    ]


@dataclass(frozen=True)
class GrowthRow:
    """The poll fragment's median cost at one N, and how it grew from the previous N."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "N",
        "Rows shown",
        "Fragment KiB",
        "Page KiB",
        "Median ms",
        "Growth vs previous N",
        "Target",
        "Verdict",
    )
    LIMIT: ClassVar[float] = 1.5

    n: int
    rows_shown: int
    fragment_bytes: int
    page_bytes: int
    median: float
    cost_ratio: float | None = None
    rows_ratio: float | None = None

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed; the first N has nothing to grow from."""
        if self.cost_ratio is None or self.rows_ratio is None:
            growth, target, ok = "1.0", "—", None
        else:
            growth = f"{self.cost_ratio:.2f}{TIMES} (rows {self.rows_ratio:.1f}{TIMES})"
            target = f"≤ {self.LIMIT:g} {TIMES} rows growth"
            ok = self.cost_ratio <= self.LIMIT * self.rows_ratio
        return (
            f"N={self.n}",
            str(self.rows_shown),
            f"{self.fragment_bytes / 1024:.1f}",
            f"{self.page_bytes / 1024:.1f}",
            f"{self.median * 1000:.1f}",
            growth,
            target,
            verdict(ok),
        )


def growth_rows(results: dict[int, LatencySamples]) -> list[GrowthRow]:
    """Compare the poll fragment's cost with the rows it shows as N grows."""
    rows: list[GrowthRow] = []
    previous: tuple[float, int] | None = None
    for n, samples in results.items():
        if not samples.warm["rows"]:
            continue
        cost = statistics.median(samples.warm["rows"])
        shown = samples.rows_shown
        cost_ratio = rows_ratio = None
        if previous is not None:
            cost_ratio, rows_ratio = cost / previous[0], shown / max(previous[1], 1)
        rows.append(
            GrowthRow(
                n, shown, samples.fragment_bytes, samples.page_bytes, cost, cost_ratio, rows_ratio
            )
        )
        previous = (cost, shown)
    return rows


@dataclass(frozen=True)
class ThroughputRow:
    """The rate concurrent clients sustained on one path, and the open pages it would serve."""

    path: str
    per_second: float
    median_ms: float
    errors: int
    pages: float
    target: str
    client: str
    ok: bool | None

    @classmethod
    def headers(cls, poll_seconds: float) -> tuple[str, ...]:
        """Return the table's headers, which name the poll interval."""
        return (
            "Path",
            "Req/s",
            "Median ms",
            "Errors",
            f"Pages served at 1 poll / {poll_seconds:g} s",
            "Target",
            "Client",
            "Verdict",
        )

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        return (
            self.path,
            f"{self.per_second:.0f}",
            f"{self.median_ms:.1f}",
            str(self.errors),
            f"{self.pages:.0f}",
            self.target,
            self.client,
            verdict(self.ok),
        )


def measure_throughput(stack: Stack, args: argparse.Namespace) -> list[ThroughputRow]:
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
            ThroughputRow(
                label, rate.per_second, rate.median_ms, rate.errors, pages, target, rate.tool, ok
            )
        )
    return rows


@dataclass(frozen=True)
class MemoryRow:
    """One memory or query figure, printed as it reads, beside its target if it has one."""

    HEADERS: ClassVar[tuple[str, ...]] = ("Figure", "Value", "Target", "Verdict")

    figure: str
    value: str
    target: str = "—"
    ok: bool | None = None

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        return (self.figure, self.value, self.target, verdict(self.ok))


def measure_memory(
    stack: Stack, args: argparse.Namespace, boot_rss: int
) -> tuple[list[MemoryRow], float]:
    """Poll 10 libraries of 1000 tracked tasks each, then read the workers' RSS; return the
    table and the RSS after, per worker, in MiB."""
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
        # The round's requests only start the refreshes: wait for them before counting.
        all_checked = wait_checked(stack.database, mem, 60)
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
    limit_mib = MEMORY_LIMIT_MIB
    per_worker = after_rss / 1024 / max(len(workers), 1)
    answered = "all answered in" if all_checked else "not all answered in"
    return [
        MemoryRow("worker RSS at boot", f"{boot_rss / 1024:.1f} MiB"),
        MemoryRow("worker RSS before the 10 libraries were polled", f"{before_rss / 1024:.1f} MiB"),
        MemoryRow(
            f"worker RSS after polling {tasks:,} tracked tasks in {MEMORY_LIBRARIES} libraries",
            f"{after_rss / 1024:.1f} MiB",
            f"≤ {limit_mib:g} MiB per worker",
            per_worker <= limit_mib,
        ),
        MemoryRow(
            "growth from tracking and polling them", f"{(after_rss - before_rss) / 1024:+.1f} MiB"
        ),
        MemoryRow(
            f"first round of polls: upstream queries ({answered} {first_round:.1f} s)",
            str(second - first),
            f"{batches} (every id once, 100 a call)",
            all_checked and second - first <= batches,
        ),
        MemoryRow(
            f"second round at once ({running:,} running, {second_round:.1f} s): upstream queries",
            str(third - second),
            "0 (all cached)",
            third - second == 0,
        ),
    ], per_worker


@dataclass(frozen=True)
class LargeRow:
    """One figure of the large library: a request's latency during its refresh, or a duration."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "Figure",
        "Samples (during the first refresh)",
        "Median",
        "Max",
        "Cache windows",
        "Target",
        "Verdict",
    )

    figure: str
    samples: str
    median: float | None
    longest: float
    windows: float | None
    target: str
    ok: bool | None
    unfinished: bool = False

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed, in ms under a second and in seconds above."""
        return (
            self.figure,
            self.samples,
            "—" if self.median is None else format_duration(self.median),
            ("> " if self.unfinished else "") + format_duration(self.longest),
            "—" if self.windows is None else f"{self.windows:.1f}",
            self.target,
            verdict(self.ok),
        )


def format_duration(seconds: float) -> str:
    """Return a duration in milliseconds under a second, else in seconds."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@dataclass
class RefreshWatch:
    """When every task of a library had been checked since `since`, as read from the store."""

    database: Path
    library_id: str
    tasks: int
    since: float
    deadline: float
    done_at: float | None = None
    checked: int = 0

    def run(self) -> None:
        """Read the store every 0.2 s until all tasks were checked or the deadline passed."""
        while time.time() < self.deadline:
            self.checked, latest = read_checked(self.database, self.library_id, self.since)
            if self.checked >= self.tasks:
                # The last check's own time, not when this read saw it: the latest checked_at
                # is that of the refresh's last answer, unless another pass wrote since.
                self.done_at = min(latest or time.time(), time.time())
                return
            time.sleep(0.2)


def measure_large(stack: Stack, args: argparse.Namespace) -> list[LargeRow]:
    """Time a large library's pages, index and proxy during its first refresh, and two refreshes.

    The library's tasks all run for an hour. The first page request starts the background
    refresh; the store is read (read-only) until every task was checked since that request.
    Then, once the dashboard is idle and every task is due again, `flask refresh` runs once.
    """
    library = stack.libraries[LARGE_LIBRARY]
    n, window = args.large_tasks, float(args.cache_seconds)
    say(f"staging {n:,} running tasks in one library and tracking them")
    stage_library(stack.upstream, stack.track, library, n, 1.0, RUNNING_SECONDS)
    target = LARGE_WINDOWS * window
    probe = library.task_ids[-1]
    paths = {
        "library page": (f"/libraries/{library.id}", {}),
        "poll fragment": (f"/libraries/{library.id}/rows", HTMX_HEADERS),
        "index": ("/", {}),
        "JSON proxy, the last id": (f"/api/v1/task/{library.id}/{probe}", {}),
    }
    samples: dict[str, list[Sample]] = {name: [] for name in paths}
    say(
        f"page, fragment, index and proxy, {LARGE_SAMPLES} each from its own sequential client, "
        f"while {n:,} tasks refresh"
    )
    since, start = time.time(), time.monotonic()
    watch = RefreshWatch(stack.database, library.id, n, since, since + LARGE_WAIT_SECONDS)
    threads = [threading.Thread(target=watch.run, daemon=True)]
    # The page goes first: its request starts the refresh.
    for index, (name, (path, headers)) in enumerate(paths.items()):
        client = functools.partial(
            time_requests,
            stack.base_url + path,
            headers,
            start + index * LARGE_SPACING / len(paths),
            LARGE_SAMPLES,
            LARGE_SPACING,
            start + LARGE_WAIT_SECONDS / 2,
            samples[name],
        )
        threads.append(threading.Thread(target=client, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LARGE_WAIT_SECONDS + 5)
    done_at = watch.done_at
    rows = []
    for name, taken in samples.items():
        elapsed = [sample.seconds for sample in taken]
        errors = sum(1 for sample in taken if not sample.ok)
        during = sum(1 for sample in taken if done_at is None or sample.sent < done_at)
        note = f", {errors} failed" if errors else ""
        rows.append(
            LargeRow(
                f"{name}, N={n:,}",
                f"{len(taken)} ({during}{note})",
                statistics.median(elapsed),
                max(elapsed),
                None,
                "≤ 1 s",
                max(elapsed) <= 1 and not errors,
            )
        )
    first = (done_at or time.time()) - since
    rows.append(
        LargeRow(
            f"refresh in the background, from the first page request until all {n:,} were "
            "checked" + ("" if done_at else f" ({watch.checked:,} when the bench gave up)"),
            "1",
            None,
            first,
            first / window,
            f"≤ {LARGE_WINDOWS} windows ({target:g} s)",
            done_at is not None and first <= target,
            unfinished=done_at is None,
        )
    )
    rows.append(time_refresh_command(stack, library, args))
    return rows


def time_refresh_command(stack: Stack, library: Library, args: argparse.Namespace) -> LargeRow:
    """Wait until the dashboard is idle and every task is due, then time `flask refresh` once."""
    n, window = len(library.task_ids), float(args.cache_seconds)
    say("waiting for the dashboard's refreshes to end and every task to fall due")
    deadline = time.time() + LARGE_WAIT_SECONDS
    while time.time() < deadline:
        _, latest = read_checked(stack.database, library.id, 0)
        # A refresh writes after every step of 1,000 ids, well within a window: a window with
        # no write means none is under way, and every task is due.
        if latest is None or time.time() > latest + window:
            break
        time.sleep(0.5)
    say(f"timing `flask refresh` on the {n:,}-task library")
    before = stack.upstream.count_task_queries()
    since = time.time()
    seconds, code = run_refresh_command(stack, library, LARGE_WAIT_SECONDS)
    queries = stack.upstream.count_task_queries() - before
    checked, _ = read_checked(stack.database, library.id, since)
    floor = math.ceil(n / IDS_PER_CALL)
    outcome = "" if code == 0 else f", exit code {code}"
    target = LARGE_WINDOWS * window
    return LargeRow(
        f"`flask refresh` in the foreground, process start included ({checked:,} of {n:,} "
        f"checked, {queries} SMH queries, floor {floor}{outcome})",
        "1",
        None,
        seconds,
        seconds / window,
        f"≤ {LARGE_WINDOWS} windows ({target:g} s)",
        code == 0 and checked >= n and seconds <= target,
    )
