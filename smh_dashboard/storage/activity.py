"""The activity log: who did what to a library, when, from where, and what SMH answered; kept
for good unless SMH_KEEP_ACTIVITY_DAYS says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.engine import Connection

from smh_dashboard.i18n import lazy_gettext
from smh_dashboard.smh.answers import SMHError
from smh_dashboard.storage import database
from smh_dashboard.storage.schema import MAX_ADDRESS_LENGTH, MAX_WHO_LENGTH
from smh_dashboard.storage.schema import activity as log

MAX_MESSAGE_LENGTH = 1000
PER_PAGE = 50
RECENT = 10


class Action(Enum):
    """What someone asked the dashboard to do to a library."""

    TRACK = "track"
    UNTRACK = "untrack"
    UNDO_UNTRACK = "undo-untrack"
    RECHECK = "recheck"
    CLEAR = "clear"
    DISABLE_HISTORY = "disable-history"
    GUIDED_CLEAR = "guided-clear"
    HISTORY_SETTINGS = "history-settings"
    RESTORE_HISTORY = "restore-history"


class Outcome(Enum):
    """How it went: asked for (SMH not yet answered), done, refused, or not known."""

    REQUESTED = "requested"
    DONE = "done"
    REFUSED = "refused"
    UNKNOWN = "unknown"


OUTCOME_TEXT = {
    Outcome.REQUESTED.value: lazy_gettext("requested"),
    Outcome.DONE.value: lazy_gettext("done"),
    Outcome.REFUSED.value: lazy_gettext("refused"),
    Outcome.UNKNOWN.value: lazy_gettext("unknown"),
}
ACTION_TEXT = {
    Action.TRACK.value: lazy_gettext("Track tasks"),
    Action.UNTRACK.value: lazy_gettext("Untrack tasks"),
    Action.UNDO_UNTRACK.value: lazy_gettext("Undo the last untrack"),
    Action.RECHECK.value: lazy_gettext("Check tasks again"),
    Action.CLEAR.value: lazy_gettext("Clear all historical versions"),
    Action.DISABLE_HISTORY.value: lazy_gettext("Switch file history off"),
    Action.GUIDED_CLEAR.value: lazy_gettext("Clear old versions, keep history on"),
    Action.HISTORY_SETTINGS.value: lazy_gettext("Change file-history settings"),
    Action.RESTORE_HISTORY.value: lazy_gettext("Turn file history back on"),
}


@dataclass(frozen=True)
class Entry:
    """One line of the activity log; `at` is Unix seconds."""

    id: int
    library_id: str
    at: float
    who: str
    action: str
    outcome: str
    task_id: int | None
    message: str
    smh_status: int | None
    smh_code: str | None
    request_id: str | None
    # The client's address; None for the command line and lines from before it was kept.
    address: str | None = None

    @property
    def action_text(self) -> str:
        """Say the action in words."""
        return str(ACTION_TEXT.get(self.action, self.action))

    @property
    def outcome_text(self) -> str:
        """Say the outcome in words."""
        return str(OUTCOME_TEXT.get(self.outcome, self.outcome))


def record_activity(
    library_id: str,
    who: str,
    action: Action,
    outcome: Outcome,
    message: str,
    at: float,
    *,
    task_id: int | None = None,
    error: SMHError | None = None,
    address: str | None = None,
    conn: Connection | None = None,
) -> None:
    """Add a line to the library's activity log, in `conn`'s transaction when one is given.

    `address` is the client's, as the request had it (None from the command line).
    """
    row = {
        "library_id": library_id,
        "at": at,
        "who": who[:MAX_WHO_LENGTH],
        "action": action.value,
        "outcome": outcome.value,
        "task_id": task_id,
        "message": message[:MAX_MESSAGE_LENGTH],
        "smh_status": error.status if error else None,
        "smh_code": error.code[:64] if error and error.code else None,
        "request_id": error.request_id[:128] if error and error.request_id else None,
        "address": address[:MAX_ADDRESS_LENGTH] if address else None,
    }
    if conn is not None:
        conn.execute(insert(log), row)
        return
    with database.begin() as own:
        own.execute(insert(log), row)


# Built once: every library page reads the latest lines.
_LISTED = (
    select(log)
    .where(log.c.library_id == bindparam("library_id"))
    .order_by(log.c.id.desc())
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


def list_activity(library_id: str, offset: int = 0, limit: int = RECENT) -> list[Entry]:
    """Return the library's activity, newest first, one page of it."""
    values = {"library_id": library_id, "offset": offset, "limit": limit}
    with database.connect() as conn:
        return [Entry(**row._mapping) for row in conn.execute(_LISTED, values)]


def count_activity(library_id: str) -> int:
    """Count the lines of the library's activity log."""
    query = select(func.count()).where(log.c.library_id == library_id)
    with database.connect() as conn:
        return conn.scalar(query) or 0


def started_by(library_id: str, task_id: int) -> str | None:
    """Return who started the clear that became this task, if the dashboard started it."""
    query = (
        select(log.c.who)
        .where(
            log.c.library_id == library_id,
            log.c.task_id == task_id,
            log.c.action == Action.CLEAR.value,
            log.c.outcome == Outcome.DONE.value,
        )
        .limit(1)
    )
    with database.connect() as conn:
        return conn.scalar(query)


def prune_activity(before: float) -> int:
    """Delete the activity of every library written before `before`; return how many lines."""
    with database.begin() as conn:
        return conn.execute(delete(log).where(log.c.at < before)).rowcount
