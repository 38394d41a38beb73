"""The dashboard's Prometheus metrics: what it counts, and the /metrics page that shows them.

Counters live at module level, as prometheus-client wants. Under gunicorn, gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before any worker imports this, so every worker writes its counts to
files there and a scrape, whichever worker answers it, adds them up. Tasks by state are not
counted at all: they are read from the store at each scrape, so every worker gives the same
figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from enum import Enum

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from smh_dashboard.domain import states

ENDPOINT = "metrics.scrape"
# The fragments pages poll and the JSON API that scripts poll: the requests the latency is about.
POLL_ENDPOINTS = frozenset(
    {"libraries.index_rows", "libraries.library_rows", "tasks.task_detail", "api.tasks"}
)

SMH_CALLS = Counter(
    "dashboard_smh_calls",
    "Calls made to SMH, by SMH endpoint and outcome (retries count as calls).",
    ["endpoint", "outcome"],
)
TOKEN_MINTS = Counter(
    "dashboard_smh_token_mints",
    "SMH access tokens obtained: minted from a library secret (new) or renewed.",
    ["kind"],
)
CACHE_HITS = Counter(
    "dashboard_cache_hits", "Task answers found in the answer cache, within their window."
)
CACHE_MISSES = Counter(
    "dashboard_cache_misses", "Task answers looked for in the answer cache and not found there."
)
POLLS = Counter(
    "dashboard_polls",
    "Polls answered, by endpoint and answer (changed, unchanged, error).",
    ["endpoint", "answer"],
)
POLL_SECONDS = Histogram(
    "dashboard_poll_seconds", "Time taken to answer a poll, in seconds.", ["endpoint"]
)

bp = Blueprint("metrics", __name__)


class Access(Enum):
    """Who may read /metrics: nobody (it is not there), signed-in people, or anyone."""

    OFF = "off"
    SIGNED_IN = "signed-in"
    OPEN = "open"


def init_app(app: Flask, count_states: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
    """Time and count polls, and serve /metrics unless METRICS is off."""
    app.extensions["metrics"] = count_states
    app.before_request(_start_clock)
    app.after_request(_count_poll)
    if app.config["METRICS"] is not Access.OFF:
        app.register_blueprint(bp)


def count_smh_call(endpoint: str, outcome: str) -> None:
    """Count one call to SMH."""
    SMH_CALLS.labels(endpoint=endpoint, outcome=outcome).inc()


def count_token_mint(kind: str) -> None:
    """Count one access token obtained from SMH ("new" or "renewed")."""
    TOKEN_MINTS.labels(kind=kind).inc()


def count_cache_lookups(hits: int, misses: int) -> None:
    """Count task answers found and not found in the answer cache."""
    CACHE_HITS.inc(hits)
    CACHE_MISSES.inc(misses)


def _start_clock() -> None:
    if request.endpoint in POLL_ENDPOINTS:
        g.poll_started = time.perf_counter()


def _count_poll(response: Response) -> Response:
    started = g.pop("poll_started", None)
    if started is None:
        return response
    if response.status_code >= 400:
        answer = "error"
    elif response.status_code == 204:
        answer = "unchanged"
    else:
        answer = "changed"
    POLLS.labels(endpoint=request.endpoint, answer=answer).inc()
    POLL_SECONDS.labels(endpoint=request.endpoint).observe(time.perf_counter() - started)
    return response


class _TrackedTasks:
    """Tasks in the store by state, read when scraped: the same figure from every worker."""

    def __init__(self, count_states: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self.count_states = count_states

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge of the configured libraries' tasks, by state."""
        totals = dict.fromkeys(states.ALL, 0)
        for by_state in self.count_states().values():
            for state, n in by_state.items():
                totals[state] = totals.get(state, 0) + n
        gauge = GaugeMetricFamily(
            "dashboard_tracked_tasks", "Tasks tracked in the dashboard, by state.", labels=["state"]
        )
        for state, n in totals.items():
            gauge.add_metric([state], n)
        yield gauge


@bp.get("/metrics")
def scrape() -> Response:
    """Answer Prometheus's scrape: every worker's counts added up, and tasks by state."""
    tracked = CollectorRegistry()
    tracked.register(_TrackedTasks(current_app.extensions["metrics"]))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    body = generate_latest(counted) + generate_latest(tracked)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
