"""Taking a guided clear's steps: each recorded before and after it is taken, under the
library's lease (the poller runs them as a chore of its refresh), the clear through start_clear.

A step that talks to SMH is first claimed by writing the job over the version it was read at,
so two processes never take one step twice; a process killed mid-step leaves a claim that runs
out after the step's lease, and the step is taken again unless it was the clear, which is never
sent twice: a clear in flight is settled from the clear guard's row (task or no task).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app

from smh_dashboard import badges, clock, formats, registry
from smh_dashboard.actions import clears
from smh_dashboard.domain import guided, retention
from smh_dashboard.domain.guided import ClearAnswer, Job, Step
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import gettext
from smh_dashboard.live import poller
from smh_dashboard.smh import codes
from smh_dashboard.smh.answers import HistorySettings, SMHError
from smh_dashboard.storage import activity, database, history_jobs, tasks
from smh_dashboard.storage import clears as guard
from smh_dashboard.storage.activity import Action, Outcome

log = logging.getLogger("activity")

# Steps taken in one go at most: a whole job is fewer; the bound only stops a loop.
MOST_STEPS = 12


@dataclass(frozen=True)
class Started:
    """What came of asking for a guided clear or a change to one: the job, and what to say."""

    message: str
    job: Job | None = None
    refused: bool = False


def timing() -> guided.Timing:
    """Return the current app's settle wait and tries, and how long a step in flight is held."""
    config = current_app.config
    one_call = 3.05 + 2 * float(config["SMH_TIMEOUT"])
    return guided.Timing(
        settle_seconds=float(config["SMH_HISTORY_SETTLE_SECONDS"]),
        settle_tries=int(config["SMH_HISTORY_SETTLE_TRIES"]),
        # A token to mint (with its retries) and the call itself, with room to spare.
        step_lease=(int(config["SMH_RETRIES"]) + 3) * one_call + 10.0,
    )


def start_guided_clear(
    library: Library, who: str, address: str | None = None, restore: bool = True
) -> Started:
    """Start a guided clear of the library; its steps follow in the library's refresh."""
    now = clock.now()
    job = history_jobs.start_job(library.id, who, address, restore, now)
    if job is None:
        message = _under_way()
        activity.record_activity(
            library.id, who, Action.GUIDED_CLEAR, Outcome.REFUSED, message, now, address=address
        )
        return Started(message, refused=True)
    if restore:
        message = gettext(
            "Guided clear started: the settings are kept, history is switched off, the library "
            "is cleared once, then history is turned back on with the kept settings."
        )
    else:
        message = gettext(
            "Guided clear started: history is switched off and the library is cleared once; "
            "history stays off afterwards."
        )
    activity.record_activity(
        library.id, who, Action.GUIDED_CLEAR, Outcome.REQUESTED, message, now, address=address
    )
    log.info("%s from %s starts guided clear %d of %s", who, address or "-", job.id, library.id)
    return Started(message, job=job)


def refuse_while_under_way(library: Library, who: str, address: str | None = None) -> str | None:
    """Refuse a clear asked for by hand while a guided clear of the library is under way (it
    clears by itself); return why, or None when none is."""
    if history_jobs.current_job(library.id) is None:
        return None
    message = _under_way()
    activity.record_activity(
        library.id, who, Action.CLEAR, Outcome.REFUSED, message, clock.now(), address=address
    )
    return message


def _under_way() -> str:
    # Said in the reader's language, so a function and not a constant.
    return gettext(
        "Not started: a guided clear of this library is already under way; "
        "follow it, or cancel it while its clear has not been sent."
    )


def job_due(library: Library) -> bool:
    """Tell whether the library's job under way has a step to take now."""
    job = history_jobs.current_job(library.id)
    if job is None or not job.due(clock.now()):
        return False
    if job.at is Step.TRACK and job.task_id is not None:
        # Only once the refresh has recorded the task's end: until then it is the tasks' due.
        task = tasks.get_task(library.id, job.task_id)
        return task is None or guided.finished_task(task.state)
    return True


def advance(library: Library) -> None:
    """Take every step of the library's job that is due now (the caller holds the lease)."""
    for _ in range(MOST_STEPS):
        if take_step(library) is None:
            return


CHORE = poller.Chore(due=job_due, run=advance)


def take_step(library: Library) -> Job | None:
    """Take the job's next step if it is due; return the job after it, or None if none was."""
    job = history_jobs.current_job(library.id)
    now = clock.now()
    if job is None or not job.due(now):
        return None
    take = _STEPS.get(job.at)
    return take(library, job, now) if take is not None else None


def _note(job: Job, outcome: Outcome, message: str, now: float, **kwargs: object) -> None:
    """Add the step to the activity log, as done by whoever started the job."""
    activity.record_activity(
        job.library_id,
        job.created_by,
        Action.GUIDED_CLEAR,
        outcome,
        message,
        now,
        address=job.address,
        **kwargs,  # type: ignore[arg-type]
    )


def _read(library: Library, job: Job, now: float) -> Job | None:
    try:
        settings = registry.client_for(library.id).get_history_settings()
    except SMHError as error:
        message = gettext(
            "The guided clear stopped before changing anything: SMH's history settings could "
            "not be read (%(said)s).",
            said=str(error),
        )
        moved = history_jobs.move_job(job, guided.after_read_failed(job, str(error), now))
        if moved:
            _note(job, Outcome.REFUSED, message, now, error=error)
        return moved
    moved = history_jobs.move_job(job, guided.after_read(job, settings, now))
    if moved is None:
        return None
    if settings.enabled:
        message = gettext(
            "Kept the file-history settings: %(settings)s.", settings=retention.describe(settings)
        )
    else:
        message = gettext("File history was already off: nothing to turn back on afterwards.")
    _note(job, Outcome.DONE, message, now)
    return moved


def _switch_off(library: Library, job: Job, now: float) -> Job | None:
    kept = job.kept_settings
    claimed = history_jobs.move_job(job, {"next_at": now + timing().step_lease})
    if claimed is None or kept is None:
        return None
    off = dataclasses.replace(kept, enabled=False)
    try:
        registry.client_for(library.id).set_history_settings(off)
    except SMHError as error:
        message = gettext(
            "File history was not switched off (%(said)s); trying again shortly.", said=str(error)
        )
        delay = guided.restore_delay(job.settle_tries + 1)
        moved = history_jobs.move_job(
            claimed,
            {
                "next_at": now + delay,
                "last_error": str(error),
                "settle_tries": job.settle_tries + 1,
            },
        )
        _note(job, Outcome.REFUSED, message, now, error=error)
        return moved
    finally:
        poller.forget_history_settings(library.id)
    moved = history_jobs.move_job(claimed, guided.after_switch_off(claimed, now, timing()))
    _note(
        job,
        Outcome.DONE,
        gettext(
            "File history is off; the clear follows once SMH has applied it (%(wait)s).",
            wait=formats.duration(timing().settle_seconds),
        ),
        now,
    )
    return moved


def _settle(library: Library, job: Job, now: float) -> Job | None:
    try:
        still_on = registry.client_for(library.id).get_history_settings().enabled
        error = gettext("SMH still says file history is on.") if still_on else None
    except SMHError as failure:
        still_on, error = True, str(failure)
    changes = guided.after_settle_check(job, still_on, now, timing(), error)
    moved = history_jobs.move_job(job, changes)
    if moved is not None and still_on:
        _note_waiting(moved, now)
    return moved


def _note_waiting(job: Job, now: float) -> None:
    if job.at is Step.SETTLE:
        message = gettext(
            "SMH has not applied the switch-off yet (%(said)s); waiting again, try %(attempt)s "
            "of %(tries)s.",
            said=job.last_error or "",
            attempt=job.settle_tries,
            tries=timing().settle_tries,
        )
        _note(job, Outcome.UNKNOWN, message, now)
        return
    message = gettext(
        "SMH did not apply the switch-off after %(tries)s tries: nothing was cleared, and file "
        "history goes back on with the kept settings.",
        tries=job.settle_tries,
    )
    _note(job, Outcome.REFUSED, message, now)


def _clear(library: Library, job: Job, now: float) -> Job | None:
    claimed = history_jobs.move_job(job, guided.clear_claim(job, now, timing()))
    if claimed is None:
        return None
    result = clears.start_clear(library, job.created_by, job.address)
    if result.task_id is not None:
        answer = ClearAnswer(task_id=result.task_id)
    elif result.unanswered:
        answer = ClearAnswer(unanswered=True, error=result.message)
    elif result.retry_at is not None:
        answer = ClearAnswer(retry_at=result.retry_at, error=result.message)
    elif result.error is not None and result.error.code == codes.FILE_HISTORY_ENABLED:
        answer = ClearAnswer(history_on=True, error=result.message)
    else:
        answer = ClearAnswer(error=result.message)
    changes = guided.after_clear(claimed, answer, clock.now(), timing())
    moved = history_jobs.move_job(claimed, changes)
    if moved is not None and answer.history_on:
        _note_waiting(moved, now)
    elif moved is not None and moved.at is Step.RESTORE:
        message = gettext(
            "The clear was not started (%(said)s): file history goes back on with the kept "
            "settings.",
            said=answer.error or "",
        )
        _note(job, Outcome.REFUSED, message, now)
    return moved


def _settle_lost_clear(library: Library, job: Job, now: float) -> Job | None:
    """Settle a clear whose sender stopped before writing what came of it."""
    asked_at = job.clear_asked_at or job.created_at
    claimed, task_id = guard.clear_claim_since(library.id, asked_at)
    if not claimed:
        # The guard was never taken (or SMH refused and it was let go): nothing was sent.
        return history_jobs.move_job(job, {"step": Step.CLEAR.value, "next_at": now})
    if task_id is not None:
        moved = history_jobs.move_job(
            job, guided.after_clear(job, ClearAnswer(task_id=task_id), now, timing())
        )
        if moved is not None:
            _note(
                job,
                Outcome.DONE,
                gettext("The clear sent before a restart started task %(task)d.", task=task_id),
                now,
                task_id=task_id,
            )
        return moved
    message = gettext(
        "The dashboard stopped while SMH was asked to clear, and its answer was not recorded: "
        "SMH may have started a clear. Nothing is sent again; look for the task in SMH. File "
        "history stays off until you turn it back on."
    )
    answer = ClearAnswer(unanswered=True, error=message)
    moved = history_jobs.move_job(job, guided.after_clear(job, answer, now, timing()))
    if moved is not None:
        _note(job, Outcome.UNKNOWN, message, now)
    return moved


def _track(library: Library, job: Job, now: float) -> Job | None:
    task = tasks.get_task(library.id, job.task_id) if job.task_id is not None else None
    changes = guided.after_task(job, task.state if task else None, now)
    if changes is None:
        return None
    moved = history_jobs.move_job(job, changes)
    if moved is None:
        return None
    if task is not None:
        badge = badges.badge_for(task.state, task.smh_status).text
        if task.delete_count is not None:
            message = gettext(
                "The clear's task %(task)d ended: %(state)s, %(deleted)s versions deleted.",
                task=task.task_id,
                state=badge,
                deleted=formats.number(task.delete_count),
            )
        else:
            message = gettext(
                "The clear's task %(task)d ended: %(state)s.", task=task.task_id, state=badge
            )
    else:
        message = gettext("The clear's task is no longer tracked; the job goes on as if it ended.")
    _note(job, Outcome.DONE, message, now, task_id=job.task_id)
    return moved


def _restore(library: Library, job: Job, now: float) -> Job | None:
    kept = job.kept_settings
    if kept is None:
        return history_jobs.move_job(
            job, {"step": Step.ENDED.value, "ended_at": now, "next_at": None}
        )
    claimed = history_jobs.move_job(job, guided.restore_claim(job, now, timing()))
    if claimed is None:
        return None
    error = write_settings(library, guided.restoring(kept))
    done_at = clock.now()
    with database.begin() as conn:
        moved = history_jobs.move_job(claimed, guided.after_restore(claimed, error, done_at), conn)
        if moved is not None and error is None:
            _tell_history_on(conn, library, job, done_at)
    if moved is None:
        return None
    if error is None:
        history_jobs.forget_kept(library.id)
        message = gettext(
            "File history is on again with the kept settings: %(settings)s.",
            settings=retention.describe(guided.restoring(kept)),
        )
        _note(job, Outcome.DONE, message, now)
        log.info("history of %s is on again after guided clear %d", library.id, job.id)
    else:
        message = gettext(
            "Turning file history back on failed (try %(attempt)s: %(said)s); trying again at "
            "%(when)s.",
            said=error,
            when=formats.utc(moved.next_at),
            attempt=claimed.restore_attempts,
        )
        _note(job, Outcome.REFUSED, message, now)
    return moved


def _tell_history_on(conn: Any, library: Library, job: Job, now: float) -> None:
    """Queue the webhook's message that history is on again, with the job's restore."""
    if library.webhook is None or job.task_id is None:
        return
    end = {
        "library_id": library.id,
        "task_id": job.task_id,
        "state": guided.HISTORY_ON,
        "smh_status": None,
        "delete_count": None,
        "label": None,
        "finished_at": now,
    }
    tasks.queue_end(conn, end, library.webhook, now)


# Each step the job can be at, and what takes it.
_STEPS: dict[Step, Callable[[Library, Job, float], Job | None]] = {
    Step.READ: _read,
    Step.SWITCH_OFF: _switch_off,
    Step.SETTLE: _settle,
    Step.CLEAR: _clear,
    Step.CLEARING: _settle_lost_clear,
    Step.TRACK: _track,
    Step.RESTORE: _restore,
}


def write_settings(library: Library, wanted: HistorySettings) -> str | None:
    """Write settings to SMH and read them back; return what went wrong, or None."""
    client = registry.client_for(library.id)
    try:
        client.set_history_settings(wanted)
        read = client.get_history_settings()
    except SMHError as error:
        return str(error)
    finally:
        poller.forget_history_settings(library.id)
    if read != wanted:
        return gettext(
            "SMH reads back %(read)s instead of %(wanted)s",
            read=retention.describe(read),
            wanted=retention.describe(wanted),
        )
    return None


def cancel_job(library: Library, who: str, address: str | None = None) -> Started:
    """Cancel the library's job while its clear has not been sent; history goes back on now."""
    now = clock.now()
    job = history_jobs.current_job(library.id)
    changes = guided.cancel(job, who, now) if job is not None else None
    moved = history_jobs.move_job(job, changes) if job is not None and changes else None
    if job is None or moved is None:
        if job is None:
            message = gettext("Nothing was cancelled: no guided clear is under way here.")
        else:
            message = gettext("Nothing was cancelled: the clear has been sent to SMH already.")
        activity.record_activity(
            library.id, who, Action.GUIDED_CLEAR, Outcome.REFUSED, message, now, address=address
        )
        return Started(message, job=job, refused=True)
    message = gettext("Guided clear cancelled before its clear was sent.")
    activity.record_activity(
        library.id, who, Action.GUIDED_CLEAR, Outcome.DONE, message, now, address=address
    )
    # History goes back on at once, under the lease, as the refresh would do it.
    poller.refresh_library(library)
    return Started(message, job=history_jobs.get_job(job.id))
