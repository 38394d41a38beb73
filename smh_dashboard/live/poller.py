"""The poller: keeps tracked tasks current from SMH, off the request path, one refresh at a time.

A page never waits on SMH: it asks for a refresh when one is due and answers at once from the
store (stale-while-revalidate). The refresh runs in a background thread, single-flight per
library across every thread, worker and instance that share Redis (see coordination.py), and
`flask refresh` (or any other process) runs the same one in the foreground. The JSON
API may wait for ids nobody tracks, bounded by SMH's timeout, and joins the refresh's batch.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app
from flask_caching import Cache

from smh_dashboard import background, clock, instruments, registry
from smh_dashboard.domain import states
from smh_dashboard.domain.libraries import Library
from smh_dashboard.live import coordination
from smh_dashboard.smh import codes
from smh_dashboard.smh.answers import (
    HistorySettings,
    ResultEntry,
    SMHError,
    TaskStatus,
    parse_task_item,
)
from smh_dashboard.storage import tasks

log = logging.getLogger("poller")

cache = Cache()

# Ids asked about in one transaction-sized step of a refresh: large libraries show progress,
# and a failure part way keeps what was already answered.
REFRESH_STEP = 1000


@dataclass(frozen=True)
class Outage:
    """SMH failing for a library: since when, what it said, and when to ask again."""

    since: float
    message: str
    status: int | None
    code: str | None
    request_id: str | None
    failures: int
    retry_at: float

    @property
    def is_timeout(self) -> bool:
        """Tell whether the last failure was SMH not answering in time."""
        return self.code == codes.TIMEOUT


class RateLimited(Exception):
    """A caller asked about new ids again within the window in which SMH was just asked."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"ask again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _Flight:
    """One library's refresh: the lease that makes it single-flight, and who waits to join it."""

    lease: coordination.Lease
    # Ids API callers wait for; the next step of a refresh takes them first, all in one batch.
    # Ids nobody tracks are kept apart: they cost SMH calls that pages never asked for.
    wanted_tracked: set[int] = field(default_factory=set)
    wanted_untracked: set[int] = field(default_factory=set)
    wanted_lock: threading.Lock = field(default_factory=threading.Lock)
    # Told after each step of a refresh, so that callers waiting for some ids wake up early.
    progress: threading.Condition = field(default_factory=threading.Condition)

    def begin(self, timeout: float) -> bool:
        """Take the refresh if it is free within `timeout` seconds (0: only if free now)."""
        return self.lease.acquire(timeout, started_at=clock.now())

    def end(self) -> None:
        """Give the refresh up (from whichever thread ran it)."""
        self.lease.release()
        self.tell()

    def tell(self) -> None:
        """Wake the callers waiting for answers: a step of the refresh was recorded."""
        with self.progress:
            self.progress.notify_all()


@dataclass(frozen=True)
class Chore:
    """Work a library's refresh does under its lease besides asking about tasks: a guided
    clear's steps. `due` is asked before the lease is taken, to start a refresh the tasks alone
    would not; `run` does only what is due, so under the lease it is called as it is."""

    due: Callable[[Library], bool]
    run: Callable[[Library], None]


def add_chore(app: Flask, chore: Chore) -> None:
    """Have every refresh of a library (pages', the watcher's, flask refresh) run the chore."""
    app.extensions["poller_chores"].append(chore)


def _chores() -> list[Chore]:
    chores: list[Chore] = current_app.extensions["poller_chores"]
    return chores


def now() -> float:
    """Return clock.now(), for web/pages.py until it reads the clock itself (then this goes)."""
    return clock.now()


def init_app(app: Flask) -> None:
    """Give each configured library its single-flight refresh, and bind the answer cache."""
    shared = app.extensions["coordination"]
    shared.serializer.allow(Outage, HistoryReading, HistorySettings, TaskStatus, ResultEntry)
    app.extensions["poller"] = {
        i: _Flight(coordination.Lease(shared, f"refresh/{i}")) for i in app.extensions["libraries"]
    }
    app.extensions["poller_chores"] = []
    cache.init_app(app)


def _flight(library_id: str) -> _Flight:
    flight: _Flight = current_app.extensions["poller"][library_id]
    return flight


def _key(library_id: str, task_id: int) -> str:
    return f"smh-task/{library_id}/{task_id}"


def _outage_key(library_id: str) -> str:
    return f"smh-outage/{library_id}"


def _untracked_key(library_id: str) -> str:
    # When SMH was last asked about ids nobody tracks, for the API's rate limit.
    return f"smh-untracked-at/{library_id}"


def current_outage(library_id: str) -> Outage | None:
    """Return the library's ongoing SMH failure, if its last call failed."""
    outage: Outage | None = cache.get(_outage_key(library_id))
    return outage


def refreshing_since(library_id: str) -> float | None:
    """Return when the library's refresh under way started, or None if none is."""
    return _flight(library_id).lease.held_since()


def _window() -> float:
    return float(current_app.config["SMH_CACHE_SECONDS"])


def _cached(library_id: str, task_ids: list[int]) -> dict[int, TaskStatus]:
    if not task_ids:
        return {}
    values = cache.get_many(*(_key(library_id, i) for i in task_ids))
    # Entries carry their fetch time so that a window also ends by the poller's clock, which
    # tests move by hand; the cache's own timeout ends it by the wall clock.
    oldest = clock.now() - _window()
    found = {
        i: v[1] for i, v in zip(task_ids, values, strict=True) if v is not None and v[0] > oldest
    }
    instruments.count_cache_lookups(hits=len(found), misses=len(task_ids) - len(found))
    return found


def request_refresh(library: Library) -> Outage | None:
    """Start a due refresh of the library without waiting for it; return the ongoing outage.

    Nothing happens when no polled task is due, while SMH's back-off runs, or while another
    refresh of the library is under way. With SMH_REFRESH_IN_BACKGROUND off (tests, one-shot
    tools) the caller runs the refresh itself.
    """
    outage = current_outage(library.id)
    tasks_due = tasks.has_due(library.id, now() - _window())
    # Chores are asked only when the tasks alone would not start a refresh (which runs them).
    if (not tasks_due or (outage and outage.retry_at > clock.now())) and not any(
        chore.due(library) for chore in _chores()
    ):
        return outage if tasks_due else None
    flight = _flight(library.id)
    if not flight.begin(timeout=0):
        return outage
    if not current_app.config["SMH_REFRESH_IN_BACKGROUND"]:
        try:
            return _refresh_and_chores(library, flight)
        finally:
            flight.end()
    background.start(
        f"smh-refresh-{library.id}",
        lambda: _refresh_and_chores(library, flight),
        done=flight.end,
        log=log,
        failure=f"refreshing library {library.id} failed unexpectedly",
    )
    return outage


def refresh_library(library: Library) -> Outage | None:
    """Bring the library's polled tasks up to date now, waiting for a refresh under way."""
    flight = _flight(library.id)
    if not flight.begin(timeout=_wait_seconds()):
        return current_outage(library.id)
    try:
        return _refresh_and_chores(library, flight)
    finally:
        flight.end()


def _refresh_and_chores(library: Library, flight: _Flight) -> Outage | None:
    """Refresh the library's tasks, then run its due chores (a job follows its task's end)."""
    outage = _refresh_locked(library, flight)
    for chore in _chores():
        chore.run(library)
    return outage


def _wait_seconds() -> float:
    # Long enough for one SMH call and its retries to end; the client's deadline bounds each.
    config = current_app.config
    return float(config["SMH_TIMEOUT"]) * (2 * int(config["SMH_RETRIES"]) + 2) + 5.0


def _refresh_locked(library: Library, flight: _Flight) -> Outage | None:
    outage = current_outage(library.id)
    if outage and outage.retry_at > clock.now():
        return outage
    due = tasks.stale_ids(library.id, now() - _window())
    asked: set[int] = set()
    position = 0
    while True:
        # Ids callers wait for go first, including those that arrive while the refresh runs.
        wanted = [i for i in _take_wanted(library.id, flight) if i not in asked]
        cached = _cached(library.id, wanted)
        step = [i for i in wanted if i not in cached]
        taken = set(step)
        while len(step) < REFRESH_STEP and position < len(due):
            task_id, position = due[position], position + 1
            if task_id not in asked and task_id not in taken:
                step.append(task_id)
        if not step:
            return None
        asked.update(step)
        outage = _fetch(library, step, outage)
        flight.tell()
        if outage is not None:
            return outage


def _take_wanted(library_id: str, flight: _Flight) -> list[int]:
    with flight.wanted_lock:
        tracked, untracked = list(flight.wanted_tracked), list(flight.wanted_untracked)
        flight.wanted_tracked, flight.wanted_untracked = set(), set()
        # Read and written under the lease: no other process is between the two.
        if untracked and clock.now() < _untracked_at(library_id) + _untracked_window():
            # They came after this window's batch went out: their callers are told to wait.
            untracked = []
        elif untracked:
            # Compared by the poller's clock, like the answers; the timeout only bounds memory.
            cache.set(_untracked_key(library_id), clock.now(), timeout=3600)
    return untracked + tracked


def _untracked_at(library_id: str) -> float:
    at: float | None = cache.get(_untracked_key(library_id))
    return -math.inf if at is None else at


def _untracked_window() -> float:
    # With no reuse configured (SMH_CACHE_SECONDS=0) a caller may still ask once a second.
    return max(_window(), 1.0)


def _fetch(library: Library, ids: list[int], outage: Outage | None) -> Outage | None:
    try:
        statuses = registry.client_for(library.id).query_tasks(ids)
    except SMHError as error:
        return _record_outage(library.id, error, outage)
    fetched_at = clock.now()
    seconds = current_app.config["SMH_CACHE_SECONDS"]
    if seconds > 0:
        cache.set_many(
            {_key(library.id, s.task_id): (fetched_at, s) for s in statuses}, timeout=seconds
        )
    if outage:
        cache.delete(_outage_key(library.id))
        log.info("SMH answers again for library %s", library.id)
    tasks.record_statuses(
        library.id,
        statuses,
        fetched_at,
        current_app.config["SMH_UNKNOWN_GRACE_SECONDS"],
        library.webhook,
    )
    return None


def fetch_statuses(
    library: Library, task_ids: list[int]
) -> tuple[dict[int, TaskStatus], Outage | None]:
    """Return SMH's answers for these tasks, reusing what is known; at most one upstream call.

    Recent answers come from the cache, and tracked tasks' last answers from the store, at most
    one refresh old (a due refresh is started, as for a page). Ids never answered for join the
    library's next refresh, so that all pages, API callers and the watcher share one batched
    query per cache window; this waits for it, bounded by SMH's timeout. A caller
    asking about ids nobody tracks within a window after SMH was last asked about such ids is
    refused with RateLimited before SMH sees anything. While SMH is failing, no call is made
    before the back-off runs out; the outage is returned instead.
    """
    found = _known(library, task_ids)
    rest = [i for i in task_ids if i not in found]
    if not rest:
        request_refresh(library)
        return _known(library, task_ids), None
    outage = current_outage(library.id)
    if outage and outage.retry_at > clock.now():
        return found, outage
    flight = _flight(library.id)
    untracked = tasks.untracked_ids(library.id, rest)
    with flight.wanted_lock:
        if untracked:
            _check_rate(library.id)
        flight.wanted_untracked.update(untracked)
        flight.wanted_tracked.update(set(rest) - set(untracked))
    outage = _wait_for(library, flight, rest)
    found |= _known(library, rest)
    if outage is None and any(i not in found for i in untracked):
        _check_rate(library.id)
    return found, outage


def _wait_for(library: Library, flight: _Flight, task_ids: list[int]) -> Outage | None:
    """Run or join the library's refresh until these ids are answered for, bounded in time."""
    deadline = time.monotonic() + _wait_seconds()
    while time.monotonic() < deadline:
        if flight.begin(timeout=0):
            try:
                return _refresh_locked(library, flight)
            finally:
                flight.end()
        # A refresh is under way: its first step takes the waiting ids; wake after each step.
        with flight.progress:
            flight.progress.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if len(_known(library, task_ids)) == len(task_ids):
            return current_outage(library.id)
    return current_outage(library.id)


def _check_rate(library_id: str) -> None:
    wait = _untracked_at(library_id) + _untracked_window() - clock.now()
    if wait > 0:
        raise RateLimited(wait)


def _known(library: Library, task_ids: list[int]) -> dict[int, TaskStatus]:
    found = _cached(library.id, task_ids)
    unknown = [i for i in task_ids if i not in found]
    if unknown:
        # What the store knows is at most one refresh old; only ids never answered for wait.
        for task_id, answer in tasks.known_answers(library.id, unknown).items():
            found[task_id] = (
                TaskStatus(task_id=task_id, state=states.MISSING)
                if answer is None
                else parse_task_item(answer)
            )
    return found


def _record_outage(library_id: str, error: SMHError, previous: Outage | None) -> Outage:
    config = current_app.config
    failures = previous.failures + 1 if previous else 1
    delay = min(config["SMH_MAX_BACKOFF_SECONDS"], config["SMH_POLL_SECONDS"] * 2 ** (failures - 1))
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, 600.0))
    at = clock.now()
    outage = Outage(
        since=previous.since if previous else at,
        message=error.message,
        status=error.status,
        code=error.code,
        request_id=error.request_id,
        failures=failures,
        retry_at=at + delay,
    )
    # Kept well past the back-off so that "since" survives; a success deletes it.
    cache.set(_outage_key(library_id), outage, timeout=max(3600, math.ceil(delay) * 2))
    log.warning(
        "SMH failed for library %s (%s); failure %d, next try in %.0fs",
        library_id,
        error,
        failures,
        delay,
    )
    return outage


def poll_seconds(outage: Outage | None) -> float:
    """Return how long a page should wait before its next poll."""
    seconds = float(current_app.config["SMH_POLL_SECONDS"])
    if outage is None:
        return seconds
    longest = float(current_app.config["SMH_MAX_BACKOFF_SECONDS"])
    return max(seconds, min(longest, outage.retry_at - clock.now()))


@dataclass(frozen=True)
class HistoryReading:
    """A library's file-history settings as SMH last gave them, or why it did not."""

    read_at: float
    settings: HistorySettings | None
    error: str | None = None


def _history_key(library_id: str) -> str:
    return f"smh-history/{library_id}"


def cached_history_settings(library_id: str) -> HistoryReading | None:
    """Return the library's file-history settings if read within the cache window, else None."""
    reading: HistoryReading | None = cache.get(_history_key(library_id))
    if reading is not None and reading.read_at > clock.now() - _window():
        return reading
    return None


def history_settings(library: Library) -> HistoryReading:
    """Return the library's file-history settings, asking SMH at most once per cache window."""
    reading = cached_history_settings(library.id)
    if reading is not None:
        return reading
    try:
        settings = registry.client_for(library.id).get_history_settings()
        reading = HistoryReading(read_at=clock.now(), settings=settings)
    except SMHError as error:
        # Kept for the window too, so that pages open on a failing SMH do not ask on every view.
        reading = HistoryReading(read_at=clock.now(), settings=None, error=str(error))
    cache.set(_history_key(library.id), reading, timeout=max(1, math.ceil(_window())))
    return reading


def forget_history_settings(library_id: str) -> None:
    """Drop the cached settings, so that the next view reads what a change made of them."""
    cache.delete(_history_key(library_id))
