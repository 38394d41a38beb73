"""Per-person caps on work that holds a worker thread: downloads (SMH_MAX_EXPORTS_PER_USER) and
JSON API calls that may wait for SMH (SMH_MAX_API_WAITS_PER_USER). A person is the signed-in
user, or the client's address without sign-in. Counted in each process: a worker's threads are
what one person must not take all of."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from smh_dashboard.web import auth

EXPORTS = "exports"
API_WAITS = "api-waits"
SETTINGS = {EXPORTS: "SMH_MAX_EXPORTS_PER_USER", API_WAITS: "SMH_MAX_API_WAITS_PER_USER"}
# What a refused caller is told to wait before trying again.
RETRY_SECONDS = 5


@dataclass
class _Slots:
    """How many of one kind of work each person has under way in this process."""

    limit: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: Counter[str] = field(default_factory=Counter)

    def take(self, who: str) -> bool:
        """Take a slot for this person if they hold fewer than the limit."""
        with self.lock:
            if self.held[who] >= self.limit:
                return False
            self.held[who] += 1
            return True

    def give_back(self, who: str) -> None:
        """Give one of this person's slots back."""
        with self.lock:
            self.held[who] -= 1
            if self.held[who] <= 0:
                del self.held[who]


def init_app(app: Flask) -> None:
    """Give the app its counters, one per kind of work, with the limits its settings say."""
    app.extensions["quotas"] = {kind: _Slots(int(app.config[s])) for kind, s in SETTINGS.items()}


def take(kind: str) -> Callable[[], None] | None:
    """Take a slot of `kind` for this request's person and return the function that gives it
    back (call it once the work ends); return None when they already hold as many as allowed."""
    slots: _Slots = current_app.extensions["quotas"][kind]
    user = auth.current_user()
    who = f"user {user.name}" if user is not None else f"address {auth.current_address()}"
    if not slots.take(who):
        return None
    return lambda: slots.give_back(who)


def limit(kind: str) -> int:
    """Return how many of `kind` one person may have under way at once."""
    slots: _Slots = current_app.extensions["quotas"][kind]
    return slots.limit
