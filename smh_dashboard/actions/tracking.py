"""Tracking, untracking and re-checking tasks: each change written with its activity line, in
one transaction, naming who made it and from where."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import current_app

from smh_dashboard import clock
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import ngettext
from smh_dashboard.storage import activity, database, tasks
from smh_dashboard.storage.activity import Action, Outcome


def track(
    library: Library, ids: list[int], label: str | None, who: str, address: str | None = None
) -> list[int]:
    """Track these tasks, up to the library's cap; return the ids that were new.

    Raise InputError, saying the cap and how many are tracked, rather than pass the cap.
    """
    cap = int(current_app.config["SMH_MAX_TRACKED_PER_LIBRARY"])

    def track_new(conn: database.Connection, now: float) -> list[int]:
        try:
            return tasks.track_tasks(library.id, ids, label, now, conn=conn, cap=cap)
        except tasks.TooManyTracked as over:
            raise inputs.InputError(
                ngettext(
                    "This library already tracks %(num)d task and takes at most %(max)d: "
                    "untrack finished tasks before tracking more.",
                    "This library already tracks %(num)d tasks and takes at most %(max)d: "
                    "untrack finished tasks before tracking more.",
                    over.tracked,
                    max=over.cap,
                ),
                "TooManyItems",
            ) from None

    return _change(library, Action.TRACK, track_new, who, address)


def untrack(
    library: Library, ids: Iterable[int], who: str, address: str | None = None
) -> list[int]:
    """Stop tracking these tasks, as the library's last untrack (undoable); return their ids."""

    def untrack_undoably(conn: database.Connection, now: float) -> list[int]:
        return tasks.untrack_tasks_undoably(library.id, ids, who, now, conn=conn)

    return _change(library, Action.UNTRACK, untrack_undoably, who, address)


def undo_untrack(library: Library, who: str, address: str | None = None) -> list[int]:
    """Track again, as they were, the tasks of the library's last untrack; return their ids."""

    def track_again(conn: database.Connection, now: float) -> list[int]:
        return tasks.undo_untrack(library.id, conn=conn)

    return _change(library, Action.UNDO_UNTRACK, track_again, who, address)


def recheck(
    library: Library, ids: Iterable[int], who: str, address: str | None = None
) -> list[int]:
    """Ask SMH again about those of these tasks it did not know; return their ids."""

    def recheck_unknown(conn: database.Connection, now: float) -> list[int]:
        return [i for i in ids if tasks.recheck_task(library.id, i, now, conn=conn)]

    return _change(library, Action.RECHECK, recheck_unknown, who, address)


def _change(
    library: Library,
    action: Action,
    change: Callable[[database.Connection, float], list[int]],
    who: str,
    address: str | None,
) -> list[int]:
    """Make a change to tasks and, if it changed any, log it, in one transaction; return the ids
    it changed."""
    now = clock.now()
    with database.begin() as conn:
        changed = change(conn, now)
        if changed:
            activity.record_activity(
                library.id,
                who,
                action,
                Outcome.DONE,
                _done_message(action, changed),
                now,
                # A line names its task when there is one; several are listed in its message.
                task_id=changed[0] if len(changed) == 1 else None,
                address=address,
                conn=conn,
            )
    return changed


def _done_message(action: Action, changed: list[int]) -> str:
    # An if for each action, not a table: pybabel extracts only literal ngettext calls.
    num, ids = len(changed), ", ".join(str(i) for i in changed)
    if action is Action.TRACK:
        return ngettext(
            "Now tracking %(num)d task: %(ids)s.",
            "Now tracking %(num)d tasks: %(ids)s.",
            num,
            ids=ids,
        )
    if action is Action.UNTRACK:
        return ngettext(
            "No longer tracking %(num)d task: %(ids)s.",
            "No longer tracking %(num)d tasks: %(ids)s.",
            num,
            ids=ids,
        )
    if action is Action.UNDO_UNTRACK:
        return ngettext(
            "Tracking again %(num)d task: %(ids)s.",
            "Tracking again %(num)d tasks: %(ids)s.",
            num,
            ids=ids,
        )
    if action is Action.RECHECK:
        return ngettext(
            "Checking %(num)d task with SMH again: %(ids)s.",
            "Checking %(num)d tasks with SMH again: %(ids)s.",
            num,
            ids=ids,
        )
    raise ValueError(f"{action} is not a change to tracked tasks")
