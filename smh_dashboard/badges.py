"""How a task's state is shown: its badge (text and colour class) and a hint where it may puzzle."""

from __future__ import annotations

from dataclasses import dataclass

from smh_dashboard.domain import states
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import LazyString, gettext, lazy_gettext
from smh_dashboard.smh.codes import state_for_code


@dataclass(frozen=True)
class Badge:
    """How a state is shown: its text and its colour class (text first, never colour alone)."""

    text: str | LazyString
    tone: str


BADGES = {
    states.PENDING: Badge(lazy_gettext("Waiting for SMH"), "running"),
    states.NOT_FOUND: Badge(lazy_gettext("Not found yet"), "unknown"),
    states.RUNNING: Badge(lazy_gettext("Running"), "running"),
    states.DONE: Badge(lazy_gettext("Done"), "done"),
    states.DONE_EMPTY: Badge(lazy_gettext("Done, no result"), "done"),
    states.FAILED: Badge(lazy_gettext("Failed"), "failed"),
    states.UNKNOWN: Badge(lazy_gettext("Unknown status"), "unknown"),
    states.MISSING: Badge(lazy_gettext("Unknown upstream"), "unknown"),
}

# One sentence on what a state means where its badge alone would leave a person guessing.
HINTS = {
    states.NOT_FOUND: lazy_gettext(
        "SMH does not list this id yet, so it may be mistyped; the dashboard still asks."
    ),
    states.MISSING: lazy_gettext(
        "SMH no longer lists this id: it keeps tasks 30 days, or the id was never a task."
    ),
    states.UNKNOWN: lazy_gettext("SMH sent a status code this dashboard does not know."),
}


def badge_for(state: str, smh_status: int | None) -> Badge:
    """Return the badge for a state, naming the status code when SMH sent an undocumented one."""
    if state == states.UNKNOWN and smh_status is not None:
        return Badge(gettext("Unknown status %(code)s", code=smh_status), "unknown")
    return BADGES.get(state, Badge(gettext("Unknown"), "unknown"))


def badge(task: Task) -> Badge:
    """Return a task's badge: its text and colour class."""
    return badge_for(task.state, task.smh_status)


def hint(task: Task) -> str:
    """Say in a sentence what a task's state means, where its badge alone may puzzle, or ''."""
    return str(HINTS.get(task.state, ""))


def last_seen(task: Task) -> str:
    """Name the state SMH last reported for a task it no longer lists, or ''."""
    if task.state != states.MISSING or task.smh_status is None:
        return ""
    seen = state_for_code(task.smh_status)
    return "" if seen == states.UNKNOWN else str(BADGES[seen].text)
