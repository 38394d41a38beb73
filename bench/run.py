"""Benchmark the dashboard on loopback under realistic load and print the figures as Markdown.

Run from the repository root: `python bench/run.py` (about 4 minutes on 2 cores), or
`python bench/run.py --quick` for a smoke run of about a minute. It starts the SMH simulator and
the dashboard under gunicorn on free 127.0.0.1 ports, drives open pages, proxy scripts and plain
clients against them, and prints one table per figure with its floor, naive counterpart or
target beside it, issue 21's drawing figures first. It is a measurement, not a test: it exits 0
whatever the verdicts. A scenario that cannot run says why in its table and the others still
report; the run exits non-zero only when the servers themselves could not start. Progress goes
to stderr, the tables to stdout. `--only drawing` (or any scenarios, comma-separated) runs
just those, staging only the libraries they need: issue 21's drawing figures in about a minute.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import requests
from sqlalchemy.engine import make_url

if not __package__:
    # Run as a script, sys.path starts at bench/; the `bench` package lives in the repository root.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import drawing, instances, report, scenarios, servers
from bench.report import TIMES, format_table, say

T = TypeVar("T")
# Every scenario, in the order they run; --only picks some of them.
SCENARIOS = (
    "pages",
    "proxy",
    "finish",
    "drawing",
    "latency",
    "throughput",
    "memory",
    "large",
    "instances",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line; --quick shrinks every scenario for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--seconds", type=float, help="T, how long each scenario runs (12)")
    parser.add_argument("--pages", help="M, open pages per scenario, comma-separated (1,10,50)")
    parser.add_argument("--tasks", help="N, tracked tasks per library (10,100,1000)")
    parser.add_argument("--running-share", type=float, default=0.2, help="share still running")
    parser.add_argument(
        "--large-tasks", type=int, help="running tasks in the large library (40000)"
    )
    parser.add_argument("--scripts", type=int, default=10, help="K, concurrent proxy scripts")
    parser.add_argument("--script-interval", type=float, default=1.0, help="seconds per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for req/s")
    parser.add_argument("--rate-seconds", type=float, help="seconds per req/s measurement (5)")
    parser.add_argument("--latency-seconds", type=float, help="seconds of latency sampling per N")
    parser.add_argument(
        "--rounds", type=int, help="rounds timing the section and page at 100 tasks (150)"
    )
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--cache-seconds", type=int, default=5, help="SMH_CACHE_SECONDS")
    parser.add_argument("--poll-seconds", type=float, default=3.0, help="SMH_POLL_SECONDS")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL whose user may create databases, for the multi-instance scenario",
    )
    parser.add_argument("--redis-url", help="a scratch Redis for the multi-instance scenario")
    parser.add_argument(
        "--only",
        help=f"run only these scenarios, comma-separated: {', '.join(SCENARIOS)} (all)",
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in (args.only or "").split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}: pick from {', '.join(SCENARIOS)}")
    args.only = frozenset(names or SCENARIOS)
    quick = args.quick
    args.seconds = args.seconds or (6.0 if quick else 12.0)
    args.pages = parse_counts(args.pages or ("1,10" if quick else "1,10,50"))
    args.tasks = parse_counts(args.tasks or ("10,100" if quick else "10,100,1000"))
    args.large_tasks = args.large_tasks or (10_000 if quick else 40_000)
    args.rate_seconds = args.rate_seconds or (2.0 if quick else 5.0)
    args.latency_seconds = args.latency_seconds or (2.0 if quick else 5.0)
    args.rounds = args.rounds or (50 if quick else 150)
    if not 0 <= args.running_share <= 1 or args.poll_seconds < 2 or args.cache_seconds < 1:
        parser.error("need 0 <= --running-share <= 1, --poll-seconds >= 2, --cache-seconds >= 1")
    return args


def parse_counts(text: str) -> list[int]:
    """Parse a comma-separated list of positive whole numbers."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"expected positive whole numbers, got {text!r}")
    return sorted(set(counts))


class Attempts:
    """Run scenarios one by one: one that cannot run says why, and the others still report;
    one that --only leaves out is not run at all."""

    def __init__(self, only: frozenset[str] = frozenset(SCENARIOS)) -> None:
        self.only = only
        self.failed: dict[str, str] = {}

    def run(self, name: str, measure: Callable[[], T], fallback: T) -> T:
        """Return what `measure` found, or `fallback` once it failed (the reason is kept) or
        when it is left out."""
        if name not in self.only:
            return fallback
        try:
            return measure()
        except Exception as error:  # any failure of one scenario: reported, and the rest go on
            reason = f"{type(error).__name__}: {error}".strip()
            say(f"could not run {name}: {reason}")
            traceback.print_exc(file=sys.stderr)
            self.failed[name] = reason
            return fallback

    def table(self, name: str, rendered: Callable[[], str], *others: str) -> str:
        """Return a table of one scenario (and `others`), or why it could not run."""
        if self.only.isdisjoint((name, *others)):
            return "_Not run: left out by --only._"
        if name in self.failed:
            return f"_Could not run: {self.failed[name]}_"
        return rendered()


def run(args: argparse.Namespace) -> str:
    """Run every scenario against one simulator and one dashboard; return the report."""
    began = time.monotonic()
    attempts = Attempts(args.only)
    with (
        tempfile.TemporaryDirectory(prefix="smh-bench-") as tmp,
        servers.run_servers(args, Path(tmp)) as stack,
    ):
        workers = servers.find_workers(stack.dashboard.pid)
        boot_rss = sum(servers.read_rss(pid) for pid in workers)
        say("warming: one poll per load library answers its pending tasks")
        for n in servers.load_sizes(args):
            stack.upstream.session.get(
                f"{stack.base_url}/libraries/load-{n}/rows", timeout=60
            ).raise_for_status()
        # The polls only start the refreshes; the scenarios must not count their queries.
        load = [stack.libraries[f"load-{n}"] for n in servers.load_sizes(args)]
        if not servers.wait_checked(stack.database, load, 60):
            raise RuntimeError("the load libraries' first refreshes did not end within 60 s")
        none: tuple[list[scenarios.UpstreamRow], list[scenarios.BrowserRow]] = ([], [])
        upstream, browser = attempts.run(
            "pages", lambda: scenarios.measure_pages(stack, args), none
        )
        upstream += attempts.run("proxy", lambda: scenarios.measure_proxy(stack, args), [])
        finish_upstream, finish_browser = attempts.run(
            "finish", lambda: scenarios.measure_finish(stack, args), none
        )
        upstream += finish_upstream
        browser += finish_browser
        drawn: drawing.Drawing | None = attempts.run(
            "drawing", lambda: drawing.measure_drawing(stack, args), None
        )
        latency: dict[int, scenarios.LatencySamples] = attempts.run(
            "latency", lambda: scenarios.measure_latency(stack, args), {}
        )
        throughput: list[scenarios.ThroughputRow] = attempts.run(
            "throughput", lambda: scenarios.measure_throughput(stack, args), []
        )
        no_memory: tuple[list[scenarios.MemoryRow], float | None] = ([], None)
        memory, rss = attempts.run(
            "memory", lambda: scenarios.measure_memory(stack, args, boot_rss), no_memory
        )
        # Last: its library keeps refreshing while anything asks about it.
        large: list[scenarios.LargeRow] = attempts.run(
            "large", lambda: scenarios.measure_large(stack, args), []
        )
    multi = None
    if args.database_url and args.redis_url and "instances" in args.only:
        with tempfile.TemporaryDirectory(prefix="smh-bench-") as tmp:
            multi = attempts.run(
                "instances", lambda: instances.measure_instances(args, Path(tmp)), None
            )
    command = "python bench/run.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    if args.database_url:
        # The report is pasted into the README: the database's password stays out of it.
        shown = make_url(args.database_url).render_as_string(hide_password=True)
        command = command.replace(args.database_url, shown)
    several = (
        " Workers share each task's freshness through the database, but without REDIS_URL each"
        " has its own lease, so at a window's start several may ask at once: the floor allows"
        " one per worker (with Redis, see the multi-instance table below)."
    )
    sections = [
        f"## Benchmark: `{command}`",
        report.describe_machine(args),
        "### Drawing: issue 21's figures beside their targets",
        format_table(
            report.TargetRow.HEADERS, report.issue_21_rows(drawn, rss, attempts.failed, args.only)
        ),
        "The section, the page and /healthz are timed in turn by one keep-alive client over "
        f"{args.rounds} rounds, on a library of {drawing.RENDER_TASKS} tracked tasks "
        f"({drawing.RENDER_RUNNING} running, every other one, so the first page shows both "
        "kinds of row); samples during which the dashboard asked SMH are dropped. The section's "
        "size is what a browser receives: browsers ask for gzip, and the dashboard compresses "
        "whole-section poll answers (never a page, which carries CSRF tokens). RSS is after "
        "the memory scenario below.",
        attempts.table(
            "drawing",
            lambda: format_table(drawing.DrawingRow.HEADERS, drawing.drawing_rows(drawn)),
        ),
        "Body is as sent (compressed for the gzip row); on the wire adds the headers.",
        "### Upstream task queries",
        attempts.table(
            "pages",
            lambda: format_table(scenarios.UpstreamRow.HEADERS, upstream),
            "proxy",
            "finish",
        ),
        f"Floor: ceil(seconds / SMH_CACHE_SECONDS) {TIMES} ceil(running / 100) per library with "
        f"something running; target ≤ floor + 1. Naive: one query per running task per page "
        f"request (pages), or one direct SMH call per script call (proxy). Proxy scripts ask for "
        f"every tracked id, finished ones too, 100 a call, every {args.script_interval:g} s."
        f"{several}",
        "### Browser requests per page per poll interval",
        attempts.table(
            "pages", lambda: format_table(scenarios.BrowserRow.HEADERS, browser), "finish"
        ),
        "Pages follow the fragment exactly as htmx would: one request per polling element per "
        "interval, and none once the fragment comes back without a trigger. Per-row polling is "
        "the naive counterpart (one request per running row shown).",
        "### Latency with a warm cache (ms), against /healthz on the same server",
        attempts.table(
            "latency",
            lambda: format_table(scenarios.LatencyRow.HEADERS, scenarios.latency_rows(latency)),
        ),
        "One sequential client; samples during which the dashboard asked SMH are dropped "
        f"({sum(len(s.cold) for s in latency.values())} in all). Times include the client. "
        "A poll with nothing new sends the version its page was drawn at (`?v=`) and gets an "
        "empty 204. The one-task-finished poll is a page drawn just before a task at the top "
        "of its first page finished (the version it sends is older than that change), answered "
        "with that row, the counts and the poller; the whole-section poll sends no version.",
        "### Bytes per poll, on the wire with headers",
        attempts.table(
            "latency",
            lambda: format_table(scenarios.BytesRow.HEADERS, scenarios.bytes_rows(latency)),
        ),
        "### Poll fragment cost as N grows",
        attempts.table(
            "latency",
            lambda: format_table(scenarios.GrowthRow.HEADERS, scenarios.growth_rows(latency)),
        ),
        "### Server memory",
        attempts.table("memory", lambda: format_table(scenarios.MemoryRow.HEADERS, memory)),
        "RSS is VmRSS of the gunicorn worker(s); the target is issue 21's.",
        "### Sustained requests per second",
        attempts.table(
            "throughput",
            lambda: format_table(scenarios.ThroughputRow.headers(args.poll_seconds), throughput),
        ),
        f"{args.clients} concurrent keep-alive clients for {args.rate_seconds:g} s. The clients "
        "run as Python threads on the same 2 cores as the server: when /healthz and the fragment "
        "come out close, the client is the bottleneck and the server's true ceiling is higher.",
        f"### Large library: {args.large_tasks:,} running tasks",
        attempts.table("large", lambda: format_table(scenarios.LargeRow.HEADERS, large)),
        f"Each request has its own sequential client, {scenarios.LARGE_SAMPLES} requests "
        f"{scenarios.LARGE_SPACING:g} s apart (or at once after a slow one), all four starting "
        "together, the library page first: its request starts the library's refresh in the "
        "background. The count in brackets is how many were sent before every task had been "
        "checked once. The proxy asks about the library's last id, the one a refresh reaches "
        "last. Refresh durations come from the store, read-only: the time until every task's "
        "checked_at is past the start. A cache window is SMH_CACHE_SECONDS "
        f"({args.cache_seconds} s). `flask refresh` runs once the dashboard is idle and every "
        "task is due again, with the dashboard's environment but a libraries file naming this "
        "library only.",
        "### One process and two instances under the same page load",
        attempts.table(
            "instances",
            lambda: (
                format_table(instances.InstancesRow.HEADERS, multi)
                if multi
                else "_Not run: give --database-url and --redis-url._"
            ),
        ),
        f"{instances.CLIENTS} clients poll {instances.LIBRARIES} libraries' pages "
        f"({instances.TASKS_PER_LIBRARY} running tasks each) for {args.seconds:g} s, round-robin "
        "over the instances, each layout with its own simulator. Floor: one query per library "
        "per cache window. The single process's figures are the same load on one gunicorn "
        "worker and SQLite; the instances share the answer cache and each library's refresh "
        "lease through Redis, and the store through PostgreSQL.",
        "### Scenarios that could not run",
        "\n".join(f"- {name}: {why}" for name, why in attempts.failed.items()) or "None.",
        f"_Finished in {time.monotonic() - began:.0f} s._",
    ]
    return "\n\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables; non-zero only if it could not run."""
    args = parse_args(argv)
    # A plain kill must stop the servers too: turn SIGTERM into an exit that unwinds.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        output = run(args)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except (RuntimeError, OSError, requests.RequestException) as error:
        say(f"could not run: {error}")
        return 1
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
