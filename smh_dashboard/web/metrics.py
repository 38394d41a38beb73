"""The /metrics page: who may read it, what a scrape shows, and the timing of every poll.

Tasks by state are not counted at all: they are read from the store at each scrape, so every
worker gives the same figure; everything else is counted in instruments.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from smh_dashboard import instruments
from smh_dashboard.domain import states
from smh_dashboard.settings import MetricsAccess

ENDPOINT = "metrics.scrape"
# The fragments pages poll and the JSON API that scripts poll: the requests the latency is about.
# Endpoint names follow the blueprints': rename them here when a blueprint is renamed.
POLL_ENDPOINTS = frozenset(
    {"libraries.index_rows", "libraries.library_rows", "tasks.task_detail", "api.tasks"}
)

bp = Blueprint("metrics", __name__)

CountStates = Callable[[], Mapping[str, Mapping[str, int]]]


def init_app(app: Flask, count_states: CountStates) -> None:
    """Time and count polls, and serve /metrics unless METRICS is off."""
    app.extensions["metrics"] = count_states
    app.before_request(_start_clock)
    app.after_request(_count_poll)
    if app.config["METRICS"] is not MetricsAccess.OFF:
        app.register_blueprint(bp)


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
    instruments.count_poll(str(request.endpoint), answer, time.perf_counter() - started)
    return response


class _TrackedTasks:
    """Tasks in the store by state, read when scraped: the same figure from every worker."""

    def __init__(self, count_states: CountStates) -> None:
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
