"""What drawing costs: the whole task section and the whole library page against /healthz, as
issue 21 measures them (100 tracked tasks, 50 running, one keep-alive client, many rounds)."""

from __future__ import annotations

import argparse
import gzip
import http.client
import statistics
from dataclasses import dataclass, field
from typing import ClassVar

from bench.clients import HOST, HTMX_HEADERS, fetch_timed
from bench.report import NO_TARGET, PAGE_LIMIT, SECTION_LIMIT, TIMES, say, verdict
from bench.servers import RENDER_LIBRARY, RUNNING_SECONDS, Stack, wait_checked

RENDER_TASKS = 100
RENDER_RUNNING = 50
GZIP_HEADERS = HTMX_HEADERS | {"Accept-Encoding": "gzip"}


@dataclass
class Drawing:
    """The warm samples (seconds) of each request over the rounds, and what each answer weighed:
    its body as sent and on the wire with headers."""

    rounds: int
    warm: dict[str, list[float]] = field(default_factory=dict)
    body: dict[str, int] = field(default_factory=dict)
    wire: dict[str, int] = field(default_factory=dict)
    markup: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    cold: int = 0

    def median(self, name: str) -> float:
        """Return the median of a request's warm samples (NaN without any)."""
        samples = self.warm.get(name) or [float("nan")]
        return statistics.median(samples)

    def ratio(self, name: str) -> float:
        """Return a request's median against /healthz's."""
        return self.median(name) / self.median("healthz")


REQUESTS = {
    "healthz": ("/healthz", HTMX_HEADERS),
    "section": (f"/libraries/{RENDER_LIBRARY}/rows", HTMX_HEADERS),
    "section, gzip": (f"/libraries/{RENDER_LIBRARY}/rows", GZIP_HEADERS),
    "page": (f"/libraries/{RENDER_LIBRARY}", HTMX_HEADERS),
}


def stage(stack: Stack) -> None:
    """Track 100 tasks, every other one running for an hour, newest first on the page."""
    library = stack.libraries[RENDER_LIBRARY]
    say(f"staging {RENDER_TASKS} tasks ({RENDER_RUNNING} running) to time drawing")
    running = stack.upstream.create_tasks(library.id, RENDER_RUNNING, RUNNING_SECONDS)
    done = stack.upstream.create_tasks(library.id, RENDER_TASKS - RENDER_RUNNING, 0)
    # One at a time, so the first page shows both kinds of row, as a page in use would.
    for pair in zip(running, done, strict=True):
        for task_id in pair:
            stack.track(library.id, [task_id])
    library.task_ids, library.running = running + done, len(running)
    stack.upstream.session.get(f"{stack.base_url}/libraries/{library.id}/rows", timeout=60)
    if not wait_checked(stack.database, [library], 60):
        raise RuntimeError(f"the first refresh of {library.id} did not end within 60 s")


def measure_drawing(stack: Stack, args: argparse.Namespace) -> Drawing:
    """Time /healthz, the whole section (plain and gzip) and the page in turn, for `rounds`.

    A sample is warm when the simulator counted no task query while it was served: a refresh
    running in the background competes for the same CPU.
    """
    stage(stack)
    say(f"timing the section and the page against /healthz, {args.rounds} rounds")
    drawing = Drawing(args.rounds, {name: [] for name in REQUESTS})
    connection = http.client.HTTPConnection(HOST, stack.port, timeout=30)
    try:
        for path, headers in REQUESTS.values():
            fetch_timed(connection, path, headers)
        queries = stack.upstream.count_task_queries()
        for _ in range(args.rounds):
            for name, (path, headers) in REQUESTS.items():
                timed = fetch_timed(connection, path, headers)
                drawing.body[name], drawing.wire[name] = len(timed.body), timed.wire_bytes
                markup = timed.body
                if timed.encoding == "gzip":
                    markup = gzip.decompress(timed.body)
                drawing.markup[name] = len(markup)
                if name == "section":
                    drawing.rows = markup.count(b'<tr id="task-')
                if name == "healthz":
                    drawing.warm[name].append(timed.seconds)
                    continue
                now = stack.upstream.count_task_queries()
                if now == queries:
                    drawing.warm[name].append(timed.seconds)
                else:
                    drawing.cold += 1
                queries = now
    finally:
        connection.close()
    return drawing


@dataclass(frozen=True)
class DrawingRow:
    """One request's median at 100 tracked tasks, its ratio to /healthz and its size."""

    HEADERS: ClassVar[tuple[str, ...]] = (
        "Request",
        "Warm samples",
        "Median ms",
        "p95 ms",
        "Median vs /healthz",
        "Body",
        "On the wire",
        "Target",
        "Verdict",
    )

    request: str
    samples: list[float]
    ratio: float
    body: int
    wire: int
    target: str = "—"
    ok: bool | None = None

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        if not self.samples:
            return (self.request, "0", "", "", "", "", "", self.target, NO_TARGET)
        ordered = sorted(self.samples)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        return (
            self.request,
            str(len(self.samples)),
            f"{statistics.median(self.samples) * 1000:.2f}",
            f"{p95 * 1000:.2f}",
            f"{self.ratio:.1f}{TIMES}",
            f"{self.body / 1024:.1f} KiB",
            f"{self.wire / 1024:.1f} KiB",
            self.target,
            verdict(self.ok),
        )


def drawing_rows(drawing: Drawing | None) -> list[DrawingRow]:
    """Return the table: each request against /healthz, the section and page with targets."""
    rows: list[DrawingRow] = []
    if drawing is None:
        return rows
    labels = {
        "healthz": "/healthz",
        "section": f"whole task section ({drawing.rows} rows), no compression",
        "section, gzip": f"whole task section ({drawing.rows} rows), gzip (as browsers ask)",
        "page": "whole library page",
    }
    for name, label in labels.items():
        ratio = drawing.ratio(name)
        target, ok = "—", None
        if name in ("section", "section, gzip"):
            target, ok = f"≤ {SECTION_LIMIT:g}{TIMES}", ratio <= SECTION_LIMIT
        elif name == "page":
            target, ok = f"≤ {PAGE_LIMIT:g}{TIMES}", ratio <= PAGE_LIMIT
        samples = drawing.warm.get(name, [])
        rows.append(
            DrawingRow(label, samples, ratio, drawing.body[name], drawing.wire[name], target, ok)
        )
    return rows
