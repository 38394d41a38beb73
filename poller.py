"""The poller: asks SMH about tracked tasks, sharing answers between pages and backing off."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app
from flask_caching import Cache

import libraries
import smh
import store
from libraries import Library

log = logging.getLogger(__name__)

cache = Cache()


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
        return self.code == "Timeout"


def now() -> float:
    """Return the current time in Unix seconds (tests move it)."""
    return time.time()


def init_app(app: Flask) -> None:
    """Give each configured library the lock that coalesces its fetches, and bind the cache."""
    app.extensions["poller_locks"] = {i: threading.Lock() for i in app.extensions["libraries"]}
    cache.init_app(app)


def _key(library_id: str, task_id: int) -> str:
    return f"smh-task/{library_id}/{task_id}"


def _outage_key(library_id: str) -> str:
    return f"smh-outage/{library_id}"


def current_outage(library_id: str) -> Outage | None:
    """Return the library's ongoing SMH failure, if its last call failed."""
    outage: Outage | None = cache.get(_outage_key(library_id))
    return outage


def _cached(library_id: str, task_ids: list[int]) -> dict[int, smh.TaskStatus]:
    if not task_ids:
        return {}
    values = cache.get_many(*(_key(library_id, i) for i in task_ids))
    # Entries carry their fetch time so that a window also ends by the poller's clock, which
    # tests move by hand; the cache's own timeout ends it by the wall clock.
    oldest = now() - current_app.config["SMH_CACHE_SECONDS"]
    return {
        i: v[1] for i, v in zip(task_ids, values, strict=True) if v is not None and v[0] > oldest
    }


def fetch_statuses(
    library: Library, task_ids: list[int]
) -> tuple[dict[int, smh.TaskStatus], Outage | None]:
    """Return SMH's answers for these tasks, reusing what is known; at most one upstream call.

    Recent answers come from the cache, and tasks that finished for good from the store. For
    the rest, concurrent callers for one library wait for a single fetch instead of each asking
    SMH, and that fetch also takes in every polled task due for a check, so that all pages and
    proxy callers share one batched query per cache window. While SMH is failing, no call is
    made before the back-off runs out; the outage is returned instead.
    """
    found = _cached(library.id, task_ids)
    unknown = [i for i in task_ids if i not in found]
    if unknown:
        answers = store.final_answers(library.id, unknown)
        found |= {i: smh.parse_task_item(answer) for i, answer in answers.items()}
    if len(found) == len(task_ids):
        return found, None
    return _fetch_rest(library, task_ids, found)


def _fetch_rest(
    library: Library, task_ids: list[int], found: dict[int, smh.TaskStatus]
) -> tuple[dict[int, smh.TaskStatus], Outage | None]:
    lock = current_app.extensions["poller_locks"][library.id]
    # Another request is already asking SMH; if that takes too long, show what is known.
    if not lock.acquire(timeout=current_app.config["SMH_TIMEOUT"] + 5):
        return found, current_outage(library.id)
    try:
        return _fetch_locked(library, task_ids, found)
    finally:
        lock.release()


def _fetch_locked(
    library: Library, task_ids: list[int], found: dict[int, smh.TaskStatus]
) -> tuple[dict[int, smh.TaskStatus], Outage | None]:
    missing = [i for i in task_ids if i not in found]
    found |= _cached(library.id, missing)
    missing = [i for i in missing if i not in found]
    if not missing:
        return found, None
    outage = current_outage(library.id)
    if outage and outage.retry_at > now():
        return found, outage
    asked = set(missing)
    wanted = missing + [i for i in _stale_ids(library) if i not in asked]
    try:
        statuses = libraries.client_for(library.id).query_tasks(wanted)
    except smh.SMHError as error:
        return found, _record_outage(library.id, error, outage)
    fetched_at = now()
    seconds = current_app.config["SMH_CACHE_SECONDS"]
    if seconds > 0:
        cache.set_many(
            {_key(library.id, s.task_id): (fetched_at, s) for s in statuses}, timeout=seconds
        )
    if outage:
        cache.delete(_outage_key(library.id))
        log.info("SMH answers again for library %s", library.id)
    store.record_statuses(
        library.id, statuses, fetched_at, current_app.config["SMH_UNKNOWN_GRACE_SECONDS"]
    )
    found |= {s.task_id: s for s in statuses if s.task_id in asked}
    return found, None


def _stale_ids(library: Library) -> list[int]:
    # The store's checked_at says when SMH was last asked about each task, for every worker
    # process alike; a task is due once a cache window has passed.
    return store.stale_ids(library.id, now() - current_app.config["SMH_CACHE_SECONDS"])


def _record_outage(library_id: str, error: smh.SMHError, previous: Outage | None) -> Outage:
    config = current_app.config
    failures = previous.failures + 1 if previous else 1
    delay = min(config["SMH_MAX_BACKOFF_SECONDS"], config["SMH_POLL_SECONDS"] * 2 ** (failures - 1))
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, 600.0))
    at = now()
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


def poll_library(library: Library) -> Outage | None:
    """Bring the library's polled tasks up to date; return the ongoing outage, if any."""
    due = _stale_ids(library)
    if not due:
        return None
    # Due tasks are polled ones: none has finished for good, so only the locked fetch applies
    # (it checks the cache again itself).
    _, outage = _fetch_rest(library, due, {})
    return outage


def poll_seconds(outage: Outage | None) -> float:
    """Return how long a page should wait before its next poll."""
    seconds = float(current_app.config["SMH_POLL_SECONDS"])
    if outage is None:
        return seconds
    longest = float(current_app.config["SMH_MAX_BACKOFF_SECONDS"])
    return max(seconds, min(longest, outage.retry_at - now()))
