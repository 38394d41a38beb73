"""Tracking, untracking and re-checking tasks: each change written with its activity line, in
one transaction, naming who made it and from where."""

from __future__ import annotations

from collections.abc import Iterable

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
    now = clock.now()
    cap = int(current_app.config["SMH_MAX_TRACKED_PER_LIBRARY"])
    with database.begin() as conn:
        try:
            new = tasks.track_tasks(library.id, ids, label, now, conn=conn, cap=cap)
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
        if new:
            message = ngettext(
                "Now tracking %(num)d task: %(ids)s.",
                "Now tracking %(num)d tasks: %(ids)s.",
                len(new),
                ids=_listed(new),
            )
            _record_done(conn, library, Action.TRACK, new, message, who, address, now)
    return new


def untrack(
    library: Library, ids: Iterable[int], who: str, address: str | None = None
) -> list[int]:
    """Stop tracking these tasks, as the library's last untrack (undoable); return their ids."""
    now = clock.now()
    with database.begin() as conn:
        gone = tasks.untrack_tasks_undoably(library.id, ids, who, now, conn=conn)
        if gone:
            message = ngettext(
                "No longer tracking %(num)d task: %(ids)s.",
                "No longer tracking %(num)d tasks: %(ids)s.",
                len(gone),
                ids=_listed(gone),
            )
            _record_done(conn, library, Action.UNTRACK, gone, message, who, address, now)
    return gone


def undo_untrack(library: Library, who: str, address: str | None = None) -> list[int]:
    """Track again, as they were, the tasks of the library's last untrack; return their ids."""
    now = clock.now()
    with database.begin() as conn:
        back = tasks.undo_untrack(library.id, conn=conn)
        if back:
            message = ngettext(
                "Tracking again %(num)d task: %(ids)s.",
                "Tracking again %(num)d tasks: %(ids)s.",
                len(back),
                ids=_listed(back),
            )
            _record_done(conn, library, Action.UNDO_UNTRACK, back, message, who, address, now)
    return back


def recheck(
    library: Library, ids: Iterable[int], who: str, address: str | None = None
) -> list[int]:
    """Ask SMH again about those of these tasks it did not know; return their ids."""
    now = clock.now()
    with database.begin() as conn:
        again = [i for i in ids if tasks.recheck_task(library.id, i, now, conn=conn)]
        if again:
            message = ngettext(
                "Checking %(num)d task with SMH again: %(ids)s.",
                "Checking %(num)d tasks with SMH again: %(ids)s.",
                len(again),
                ids=_listed(again),
            )
            _record_done(conn, library, Action.RECHECK, again, message, who, address, now)
    return again


def _record_done(
    conn: database.Connection,
    library: Library,
    action: Action,
    changed: list[int],
    message: str,
    who: str,
    address: str | None,
    now: float,
) -> None:
    """Log a change to these tasks that went through, in `conn`'s transaction."""
    activity.record_activity(
        library.id,
        who,
        action,
        Outcome.DONE,
        message,
        now,
        # A line names its task when there is one; several are listed in its message.
        task_id=changed[0] if len(changed) == 1 else None,
        address=address,
        conn=conn,
    )


def _listed(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)
