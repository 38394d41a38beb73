"""Bounded growth: records the dashboard is done with are deleted once they are old enough.

Finished tasks after SMH_KEEP_FINISHED_DAYS, delivered (or given up) messages after
SMH_KEEP_DELIVERED_DAYS, and activity only if SMH_KEEP_ACTIVITY_DAYS is set (0 keeps any of them
for good). Whichever process notices first prunes: the watcher and `flask refresh` after their
pass, a web worker from a request (in the background), `flask prune` by hand; each process at
most once an hour, as the deletes are the same whoever runs them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Flask, current_app

from smh_dashboard import background, clock
from smh_dashboard.storage import activity, outbox, tasks

log = logging.getLogger("pruning")

DAY = 86400.0
# The least time between two prunings in one process.
PRUNE_INTERVAL = 3600.0


@dataclass(frozen=True)
class Pruned:
    """What one pruning deleted: finished tasks, sent messages, activity lines."""

    finished: int
    sent: int
    activity: int

    def describe(self) -> str:
        """Say in one line what was deleted."""
        return (
            f"{self.finished} finished task(s), {self.sent} delivered message(s) "
            f"and {self.activity} activity line(s)"
        )


@dataclass
class _Schedule:
    """When this process may prune next, and whether it is pruning now."""

    lock: threading.Lock
    next_at: float = 0.0


def init_app(app: Flask) -> None:
    """Prune from web requests too, at most once an hour, off the request path."""
    app.extensions["pruning"] = _Schedule(threading.Lock())
    app.before_request(request_pruning)


def prune() -> Pruned:
    """Delete now every record older than its setting allows."""
    config = current_app.config
    now = clock.now()

    def cutoff(setting: str) -> float | None:
        days = float(config[setting])
        return now - days * DAY if days > 0 else None

    finished, sent, lines = (
        cutoff("SMH_KEEP_FINISHED_DAYS"),
        cutoff("SMH_KEEP_DELIVERED_DAYS"),
        cutoff("SMH_KEEP_ACTIVITY_DAYS"),
    )
    pruned = Pruned(
        finished=tasks.prune_finished(finished) if finished is not None else 0,
        sent=outbox.prune_sent(sent) if sent is not None else 0,
        activity=activity.prune_activity(lines) if lines is not None else 0,
    )
    if pruned != Pruned(0, 0, 0):
        log.info("pruned %s", pruned.describe())
    return pruned


def prune_due() -> Pruned | None:
    """Prune unless this process did within the hour; return what was deleted, if it ran."""
    if not _take_turn():
        return None
    return prune()


def _take_turn() -> bool:
    schedule: _Schedule = current_app.extensions["pruning"]
    now = clock.now()
    with schedule.lock:
        if now < schedule.next_at:
            return False
        schedule.next_at = now + PRUNE_INTERVAL
    return True


def request_pruning() -> None:
    """Prune from a web worker when due, in a background thread (or in the request, with
    SMH_REFRESH_IN_BACKGROUND off)."""
    if not _take_turn():
        return
    if not current_app.config["SMH_REFRESH_IN_BACKGROUND"]:
        prune()
        return
    background.start(
        "pruning", prune, done=lambda: None, log=log, failure="pruning old records failed"
    )
