"""Clearing a library's history: the one-a-minute guard, SMH's call, tracking and logging it."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from smh_dashboard import clock, formats, registry
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import gettext, lazy_gettext
from smh_dashboard.live import poller
from smh_dashboard.smh import codes
from smh_dashboard.smh.answers import SMHError
from smh_dashboard.storage import activity, database, history_jobs, tasks
from smh_dashboard.storage import clears as guard
from smh_dashboard.storage.activity import Action, Outcome

log = logging.getLogger("activity")

# SMH takes one clear a minute per library; the dashboard holds itself to the same.
CLEAR_INTERVAL = 60.0
# Codes after which SMH may have acted without the dashboard hearing its answer.
UNANSWERED_CODES = ("Timeout", "Unreachable")


@dataclass(frozen=True)
class Result:
    """What came of asking for a change: the new task's id, what to tell people, and why not."""

    message: str
    task_id: int | None = None
    retry_at: float | None = None
    unanswered: bool = False
    error: SMHError | None = None

    @property
    def done(self) -> bool:
        """Tell whether the change was made (for a clear: SMH gave its task id)."""
        return self.error is None and self.retry_at is None


def start_clear(library: Library, who: str, address: str | None = None) -> Result:
    """Start clearing every historical version of the library, at most once a minute.

    The activity log says the clear was asked for before SMH is called, so a clear SMH started
    leaves a line even if what follows fails to be written; `address` is the client's.
    """
    now = clock.now()
    holder = guard.claim_clear(library.id, who, now, CLEAR_INTERVAL)
    if holder is not None:
        claimed_at, claimed_by = holder
        retry_at = claimed_at + CLEAR_INTERVAL
        if claimed_by == guard.SMH_WAIT:
            message = gettext(
                "Not started: SMH asked for a wait before this library's next clear. "
                "Try again after %(retry_at)s.",
                retry_at=formats.utc(retry_at),
            )
        else:
            message = gettext(
                "Not started: a clear of this library was asked for %(asked_at)s by %(who)s, "
                "and SMH allows one a minute. Try again after %(retry_at)s.",
                asked_at=formats.utc(claimed_at),
                who=claimed_by,
                retry_at=formats.utc(retry_at),
            )
        activity.record_activity(
            library.id, who, Action.CLEAR, Outcome.REFUSED, message, now, address=address
        )
        return Result(message, retry_at=retry_at)
    asking = gettext("Asking SMH to clear all historical versions.")
    activity.record_activity(
        library.id, who, Action.CLEAR, Outcome.REQUESTED, asking, now, address=address
    )
    log.info("%s from %s asks SMH to clear library %s", who, address or "-", library.id)
    try:
        task_id = registry.client_for(library.id).clear_history()
    except SMHError as error:
        return _clear_failed(library, who, address, now, error)
    # Said before the record is written: should writing it fail, the task id is still known.
    log.info("SMH started clear task %d in library %s for %s", task_id, library.id, who)
    label = gettext("History clear started by %(who)s", who=who)[: inputs.MAX_LABEL_LENGTH]
    message = gettext("SMH started clearing all historical versions: task %(task)d.", task=task_id)
    with database.begin() as conn:
        tasks.track_tasks(library.id, [task_id], label, now, conn=conn, started=True)
        guard.note_clear_task(conn, library.id, now, task_id)
        activity.record_activity(
            library.id,
            who,
            Action.CLEAR,
            Outcome.DONE,
            message,
            now,
            task_id=task_id,
            address=address,
            conn=conn,
        )
    return Result(message, task_id=task_id)


def refuse_clear(library: Library, who: str, why: str, address: str | None = None) -> None:
    """Record a clear refused before SMH was asked (its confirmation was not typed right)."""
    activity.record_activity(
        library.id, who, Action.CLEAR, Outcome.REFUSED, why, clock.now(), address=address
    )
    log.info("%s from %s: clear of library %s refused: %s", who, address or "-", library.id, why)


def _clear_failed(
    library: Library, who: str, address: str | None, now: float, error: SMHError
) -> Result:
    said = _smh_said(error)
    retry_at = None
    unanswered = error.code in UNANSWERED_CODES
    # What becomes of the guard this clear took: held until SMH's wait ends, released, or kept.
    held_from: float | None = None
    released = False
    if error.status == 429:
        retry_at = now + max(1.0, error.retry_after or CLEAR_INTERVAL)
        message = gettext(
            "SMH refused the clear: it allows one a minute (%(said)s). "
            "Try again after %(retry_at)s.",
            said=said,
            retry_at=formats.utc(retry_at),
        )
        held_from = retry_at - CLEAR_INTERVAL
        outcome = Outcome.REFUSED
    elif unanswered:
        message = gettext(
            "SMH did not answer the clear (%(said)s). It may have started a clear whose task id "
            "the dashboard never learnt: the dashboard has not asked again. Look for the task "
            "in SMH before trying once more, after the minute SMH requires.",
            said=said,
        )
        outcome = Outcome.UNKNOWN
    elif error.status is not None and error.status < 500:
        message = gettext(
            "SMH refused the clear: %(advice)s (%(said)s).", advice=_advice(error), said=said
        )
        # SMH started nothing, so nothing holds the minute: fixing the cause and trying again
        # at once is fine.
        released = True
        outcome = Outcome.REFUSED
    else:
        message = gettext(
            "SMH failed to start the clear (%(said)s); nothing is tracked. "
            "Try again once SMH answers, after the minute SMH requires.",
            said=said,
        )
        outcome = Outcome.REFUSED
    with database.begin() as conn:
        if held_from is not None:
            guard.move_clear_claim(conn, library.id, now, held_from)
        elif released:
            guard.release_clear(conn, library.id, now)
        activity.record_activity(
            library.id,
            who,
            Action.CLEAR,
            outcome,
            message,
            now,
            error=error,
            address=address,
            conn=conn,
        )
    return Result(message, retry_at=retry_at, unanswered=unanswered, error=error)


def switch_history_off(library: Library, who: str, address: str | None = None) -> Result:
    """Switch the library's file history off, keeping its other settings as they were."""
    now = clock.now()
    client = registry.client_for(library.id)
    try:
        settings = client.get_history_settings()
        if settings.enabled:
            client.set_history_settings(dataclasses.replace(settings, enabled=False))
    except SMHError as error:
        message = gettext(
            "File history was not switched off: %(advice)s (%(said)s).",
            advice=_advice(error),
            said=_smh_said(error),
        )
        outcome = Outcome.UNKNOWN if error.code in UNANSWERED_CODES else Outcome.REFUSED
        activity.record_activity(
            library.id,
            who,
            Action.DISABLE_HISTORY,
            outcome,
            message,
            now,
            error=error,
            address=address,
        )
        return Result(message, error=error)
    finally:
        poller.forget_history_settings(library.id)
    if settings.enabled:
        # So that one button can turn it back on as it was (SMH then answers only "off").
        history_jobs.keep_settings(library.id, settings, who, now)
        message = gettext("File history is now off; the other settings are as they were.")
    else:
        message = gettext("File history was already off.")
    activity.record_activity(
        library.id, who, Action.DISABLE_HISTORY, Outcome.DONE, message, now, address=address
    )
    return Result(message)


ADVICE = {
    codes.FILE_HISTORY_ENABLED: lazy_gettext("file history is still on; switch it off first"),
    "NoPermission": lazy_gettext("the library's token is not an admin token"),
    "InvalidAccessToken": lazy_gettext("SMH rejected the library's access token"),
    "AccessTokenNotMatchLibrary": lazy_gettext("the access token belongs to another library"),
    "LibraryNotFound": lazy_gettext("SMH does not know this library"),
    "WrongLibraryIdOrSecret": lazy_gettext("the library id or secret is wrong"),
    "LibraryServiceExpired": lazy_gettext("the library's SMH service has expired"),
    "RateLimitExceeded": lazy_gettext("SMH allows one clear a minute"),
}


def _advice(error: SMHError) -> str:
    return str(ADVICE.get(error.code or "", error.message))


def _smh_said(error: SMHError) -> str:
    return str(error)
