"""Task states: what SMH reports and what the dashboard adds, their groups, filters and badges."""

from __future__ import annotations

from dataclasses import dataclass

from smh_dashboard.i18n import LazyString, gettext, lazy_gettext
from smh_dashboard.smh.answers import (
    DONE,
    DONE_EMPTY,
    FAILED,
    MISSING,
    RUNNING,
    STATE_BY_CODE,
    UNKNOWN,
)

# SMH's own states, what its status codes stand for and which states it never changes (FINISHED)
# come with its answers (smh/answers.py); the dashboard adds these two.
# Tracked, but not answered for yet: the dashboard's own state, never SMH's.
PENDING = "pending"
# Tracked, and SMH has answered without it, still within the grace period (a mistyped id, or one
# SMH does not list yet): still asked about, but not counted as running. Also the dashboard's own.
NOT_FOUND = "not_found"
# Every state, in the order pages and the metrics list them.
EVERY_STATE = (PENDING, NOT_FOUND, RUNNING, DONE, DONE_EMPTY, FAILED, UNKNOWN, MISSING)

# The dashboard keeps asking SMH about these. A status code SMH does not document (UNKNOWN) is
# shown and not asked about again: a person can ask for another check (RECHECKABLE).
POLLED = (PENDING, RUNNING, NOT_FOUND)
RECHECKABLE = (MISSING, UNKNOWN)
# Counted as running in titles, counts and status lines: SMH has not said it does not know them.
UNDER_WAY = (PENDING, RUNNING)
# Ended well, and ended otherwise: what a page's title marks with ✓ or ✕ once nothing is polled.
ENDED_WELL = (DONE, DONE_EMPTY)


@dataclass(frozen=True)
class Filter:
    """A named group of states that a library page can be narrowed to."""

    name: str
    label: str | LazyString
    states: tuple[str, ...]


FILTERS = {
    f.name: f
    for f in (
        Filter("running", lazy_gettext("Running"), UNDER_WAY),
        Filter("not_found", lazy_gettext("Not found yet"), (NOT_FOUND,)),
        Filter("done", lazy_gettext("Done"), (DONE, DONE_EMPTY)),
        Filter("failed", lazy_gettext("Failed"), (FAILED,)),
        Filter("unknown", lazy_gettext("Unknown"), RECHECKABLE),
    )
}


@dataclass(frozen=True)
class Badge:
    """How a state is shown: its text and its colour class (text first, never colour alone)."""

    text: str | LazyString
    tone: str


BADGES = {
    PENDING: Badge(lazy_gettext("Waiting for SMH"), "running"),
    NOT_FOUND: Badge(lazy_gettext("Not found yet"), "unknown"),
    RUNNING: Badge(lazy_gettext("Running"), "running"),
    DONE: Badge(lazy_gettext("Done"), "done"),
    DONE_EMPTY: Badge(lazy_gettext("Done, no result"), "done"),
    FAILED: Badge(lazy_gettext("Failed"), "failed"),
    UNKNOWN: Badge(lazy_gettext("Unknown status"), "unknown"),
    MISSING: Badge(lazy_gettext("Unknown upstream"), "unknown"),
}


# One sentence on what a state means where its badge alone would leave a person guessing.
HINTS = {
    NOT_FOUND: lazy_gettext(
        "SMH does not list this id yet, so it may be mistyped; the dashboard still asks."
    ),
    MISSING: lazy_gettext(
        "SMH no longer lists this id: it keeps tasks 30 days, or the id was never a task."
    ),
    UNKNOWN: lazy_gettext("SMH sent a status code this dashboard does not know."),
}


def badge_for(state: str, smh_status: int | None) -> Badge:
    """Return the badge for a state, naming the status code when SMH sent an undocumented one."""
    if state == UNKNOWN and smh_status is not None:
        return Badge(gettext("Unknown status %(code)s", code=smh_status), "unknown")
    return BADGES.get(state, Badge(gettext("Unknown"), "unknown"))


def last_seen(state: str, smh_status: int | None) -> str:
    """Name the state SMH last reported for a task it no longer lists, or ''."""
    if state != MISSING or smh_status not in STATE_BY_CODE:
        return ""
    return str(BADGES[STATE_BY_CODE[smh_status]].text)
