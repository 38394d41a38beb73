"""How often sign-in may fail: per user name and address, with a looser cap per address.

Each password check takes a slot before the password is hashed, atomically (Redis INCR when
REDIS_URL is set, so every worker and instance counts together; a lock in this process
otherwise, or while Redis is out of reach); a right password gives its slot back. Windows are
fixed spans of FAILURE_WINDOW_SECONDS on the dashboard's clock: a name or an address that used
up its failures waits until its window ends.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from smh_dashboard.live import coordination

# Failures of one user name from one address within a window; the next try answers 429.
MAX_FAILURES = 10
# Failures from one address within a window, whatever the names: several people behind one
# proxy address still sign in, while one address spraying names is stopped.
MAX_ADDRESS_FAILURES = 50
FAILURE_WINDOW_SECONDS = 300.0
# Password hashes (a 32 MiB scrypt each) checked at once by this process; the others wait up to
# CHECK_QUEUE_SECONDS for a turn, then answer 429.
MAX_CONCURRENT_CHECKS = 4
CHECK_QUEUE_SECONDS = 2.0
# Counters kept in this process's memory at most (without Redis).
MAX_COUNTERS = 20_000


@dataclass(frozen=True)
class Slot:
    """A password check counted before it runs; `retry_after` is set when it may not run."""

    keys: list[str]
    retry_after: float | None


class Throttle:
    """Failed sign-ins counted per (address, user name) and per address, in windows."""

    def __init__(self, shared: coordination.Shared | None = None) -> None:
        self.shared = shared
        self.checks = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def retry_after(self, address: str, name: str, now: float) -> float | None:
        """Return how long this name from this address must wait, or None if it may try."""
        keys = _keys(address, name, now)
        counts = self._shared_counts(keys)
        if counts is None:
            with self._lock:
                counts = [self._counts.get(key, 0) for key in keys]
        return _wait(counts, now, at_most=(MAX_FAILURES - 1, MAX_ADDRESS_FAILURES - 1))

    def reserve(self, address: str, name: str, now: float) -> Slot:
        """Count a password check before it runs, as a failure until it is given back."""
        keys = _keys(address, name, now)
        counts = self._add_shared(keys, 1)
        if counts is None:
            with self._lock:
                counts = self._add_local(keys, 1)
        slot = Slot(keys, _wait(counts, now, at_most=(MAX_FAILURES, MAX_ADDRESS_FAILURES)))
        if slot.retry_after is not None:
            self.release(slot)
        return slot

    def release(self, slot: Slot) -> None:
        """Give a slot back: the password was right, or it was never checked."""
        if self._add_shared(slot.keys, -1) is None:
            with self._lock:
                self._add_local(slot.keys, -1)

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Wait briefly for a turn to hash a password; yield whether one came."""
        acquired = self.checks.acquire(timeout=CHECK_QUEUE_SECONDS)
        try:
            yield acquired
        finally:
            if acquired:
                self.checks.release()

    def _add_local(self, keys: list[str], delta: int) -> list[int]:
        if len(self._counts) >= MAX_COUNTERS:
            # Dict order is oldest first, and old windows are over: forget those first.
            for key in list(self._counts)[: MAX_COUNTERS // 2]:
                del self._counts[key]
        counts = []
        for key in keys:
            count = max(0, self._counts.get(key, 0) + delta)
            self._counts[key] = count
            counts.append(count)
        return counts

    def _shared_counts(self, keys: list[str]) -> list[int] | None:
        client = self.shared.reachable() if self.shared else None
        if client is None or self.shared is None:
            return None
        try:
            values = client.mget(keys)
        except redis.RedisError as error:
            self.shared.failed(error)
            return None
        return [int(value or 0) for value in values]

    def _add_shared(self, keys: list[str], delta: int) -> list[int] | None:
        client = self.shared.reachable() if self.shared else None
        if client is None or self.shared is None:
            return None
        try:
            with client.pipeline() as pipe:
                for key in keys:
                    pipe.incrby(key, delta)
                    pipe.expire(key, math.ceil(FAILURE_WINDOW_SECONDS) + 1)
                results = pipe.execute()
        except redis.RedisError as error:
            self.shared.failed(error)
            return None
        return [int(count) for count in results[::2]]


def _keys(address: str, name: str, now: float) -> list[str]:
    """Return the counters of this user name from this address, then of the address alone."""
    window = int(now // FAILURE_WINDOW_SECONDS)
    # Digests keep keys short and plain whatever a client sends as a name or forwarded address.
    place = hashlib.sha256(address.encode()).hexdigest()[:32]
    who = hashlib.sha256(f"{address}\n{name}".encode()).hexdigest()[:32]
    prefix = f"{coordination.KEY_PREFIX}sign-in/{window}"
    return [f"{prefix}/{place}/{who}", f"{prefix}/{place}"]


def _wait(counts: list[int], now: float, at_most: tuple[int, int]) -> float | None:
    if all(count <= limit for count, limit in zip(counts, at_most, strict=True)):
        return None
    return FAILURE_WINDOW_SECONDS - now % FAILURE_WINDOW_SECONDS
