"""A guided clear: keep a library's file-history settings, switch history off, let SMH settle,
clear once, follow the task, then turn history back on with exactly the kept settings.

Pure rules: each function takes a job as recorded and what was just learnt, and returns the
columns to write (a step's record), or None when there is nothing to do. actions/guided.py takes
the steps; storage/history_jobs.py writes each one over the version it read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from smh_dashboard.domain import states
from smh_dashboard.smh.answers import HistorySettings


class Step(Enum):
    """The step a job takes next; CLEARING is a clear sent and not yet answered for."""

    READ = "read"
    SWITCH_OFF = "switch-off"
    SETTLE = "settle"
    CLEAR = "clear"
    CLEARING = "clearing"
    TRACK = "track"
    RESTORE = "restore"
    ENDED = "ended"


class Ending(Enum):
    """How a job ended (or, while it restores, how it will)."""

    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # The clear's answer was lost: SMH may have started a clear, so nothing is sent again.
    UNANSWERED = "unanswered"


# Steps before the clear is sent: a job may be cancelled in them.
CANCELLABLE = (Step.READ, Step.SWITCH_OFF, Step.SETTLE, Step.CLEAR)
# The state a webhook message about a guided clear's restore carries (beside a task's end states).
HISTORY_ON = "history-on"
# A failed restore is tried again after this, doubling, at most RESTORE_RETRY_MOST apart.
RESTORE_RETRY_SECONDS = 15.0
RESTORE_RETRY_MOST = 600.0


@dataclass(frozen=True)
class Timing:
    """How long a job waits for SMH: the settle wait and its tries, and a step's lease (how
    long a step in flight is its taker's before another process may count it as gone)."""

    settle_seconds: float
    settle_tries: int
    step_lease: float


@dataclass(frozen=True)
class Job:
    """One guided clear of one library, as recorded; times are Unix seconds."""

    id: int
    library_id: str
    created_at: float
    created_by: str
    address: str | None
    restore: bool
    step: str
    version: int
    kept: dict[str, Any] | None
    read_at: float | None
    off_at: float | None
    clear_asked_at: float | None
    cleared_at: float | None
    task_id: int | None
    task_ended_at: float | None
    restored_at: float | None
    cancelled_at: float | None
    cancelled_by: str | None
    ended_at: float | None
    outcome: str | None
    settle_tries: int
    restore_attempts: int
    next_at: float | None
    last_error: str | None

    @property
    def at(self) -> Step:
        """Return the step the job takes next."""
        return Step(self.step)

    @property
    def ending(self) -> Ending | None:
        """Return how the job ended (or, while it restores, will end); None before that."""
        return Ending(self.outcome) if self.outcome else None

    @property
    def under_way(self) -> bool:
        """Tell whether the job has not ended."""
        return self.ended_at is None

    @property
    def cancellable(self) -> bool:
        """Tell whether the job may still be cancelled: its clear has not been sent."""
        return self.under_way and self.at in CANCELLABLE and self.cancelled_at is None

    @property
    def kept_settings(self) -> HistorySettings | None:
        """Return the settings kept before history was switched off, if history was on."""
        return settings_from(self.kept)

    @property
    def history_off(self) -> bool:
        """Tell whether the job left history off and has not turned it back on (yet)."""
        return self.off_at is not None and self.restored_at is None

    def due(self, now: float) -> bool:
        """Tell whether a step of the job may be taken now."""
        if not self.under_way:
            return False
        if self.at is Step.TRACK:
            # Followed through the task's record, which every refresh brings up to date.
            return True
        return self.next_at is None or self.next_at <= now


def settings_data(settings: HistorySettings) -> dict[str, Any]:
    """Return settings under SMH's own names, as a job keeps them."""
    return {
        "enableFileHistory": settings.enabled,
        "fileHistoryCount": settings.count,
        "fileHistoryExpireDay": settings.expire_days,
        "mergeInterval": settings.merge_interval,
    }


def settings_from(data: dict[str, Any] | None) -> HistorySettings | None:
    """Return the settings a job or a switch-off kept, or None."""
    if not data:
        return None
    return HistorySettings(
        enabled=bool(data.get("enableFileHistory")),
        count=data.get("fileHistoryCount"),
        expire_days=data.get("fileHistoryExpireDay"),
        merge_interval=data.get("mergeInterval"),
    )


def restoring(settings: HistorySettings) -> HistorySettings:
    """Return the kept settings as they are written back: history on, the rest as kept."""
    return dataclasses.replace(settings, enabled=True)


def after_read(job: Job, settings: HistorySettings, now: float) -> dict[str, Any]:
    """Keep what SMH said; switch history off next, or clear at once if it was off already."""
    if not settings.enabled:
        return {"step": Step.CLEAR.value, "read_at": now, "kept": None, "next_at": now}
    return {
        "step": Step.SWITCH_OFF.value,
        "read_at": now,
        "kept": settings_data(settings),
        "next_at": now,
    }


def after_read_failed(job: Job, error: str, now: float) -> dict[str, Any]:
    """SMH's settings could not be read: nothing was changed, so the job ends, failed."""
    return {**_give_up(job, Ending.FAILED, now), "last_error": error}


def after_switch_off(job: Job, now: float, timing: Timing) -> dict[str, Any]:
    """History is off as far as SMH answered: give it the settle wait before the clear."""
    return {"step": Step.SETTLE.value, "off_at": now, "next_at": now + timing.settle_seconds}


def after_settle_check(
    job: Job, still_on: bool, now: float, timing: Timing, error: str | None = None
) -> dict[str, Any]:
    """Clear once SMH says history is off; else wait again, a bounded number of times.

    Past the last try the job fails before any clear was sent, so history goes back on.
    """
    if not still_on:
        return {"step": Step.CLEAR.value, "next_at": now}
    tries = job.settle_tries + 1
    if tries >= timing.settle_tries:
        return {
            "settle_tries": tries,
            "last_error": error,
            **_give_up(job, Ending.FAILED, now),
        }
    return {
        "step": Step.SETTLE.value,
        "settle_tries": tries,
        "last_error": error,
        "next_at": now + timing.settle_seconds,
    }


def clear_claim(job: Job, now: float, timing: Timing) -> dict[str, Any]:
    """Record, before SMH is asked, that the clear is being sent (it is never sent twice)."""
    return {"step": Step.CLEARING.value, "clear_asked_at": now, "next_at": now + timing.step_lease}


@dataclass(frozen=True)
class ClearAnswer:
    """What came of the clear: SMH's task, a wait, history still on, no answer, or a refusal."""

    task_id: int | None = None
    retry_at: float | None = None
    history_on: bool = False
    unanswered: bool = False
    error: str | None = None


def after_clear(job: Job, answer: ClearAnswer, now: float, timing: Timing) -> dict[str, Any]:
    """Follow the clear's task; wait for the guard or SMH's minute; settle again; or stop."""
    if answer.task_id is not None:
        return {
            "step": Step.TRACK.value,
            "task_id": answer.task_id,
            "cleared_at": now,
            "next_at": None,
            "last_error": None,
        }
    if answer.unanswered:
        # History stays off: the clear SMH may be running is not to be disturbed; the page
        # offers to turn it back on once the admin has looked in SMH.
        return {
            "step": Step.ENDED.value,
            "outcome": Ending.UNANSWERED.value,
            "ended_at": now,
            "next_at": None,
            "last_error": answer.error,
        }
    if answer.retry_at is not None:
        return {"step": Step.CLEAR.value, "next_at": answer.retry_at, "last_error": answer.error}
    if answer.history_on:
        return after_settle_check(job, True, now, timing, answer.error)
    return {"last_error": answer.error, **_give_up(job, Ending.FAILED, now)}


def finished_task(state: str | None) -> bool:
    """Tell whether a clear's task has ended as far as the dashboard knows (or is lost)."""
    return state is None or state not in states.POLLED


def after_task(job: Job, state: str | None, now: float) -> dict[str, Any] | None:
    """Once the clear's task ended (done, failed, or no longer known), restore or end."""
    if not finished_task(state):
        return None
    if job.restore and job.kept is not None:
        return {
            "step": Step.RESTORE.value,
            "task_ended_at": now,
            "next_at": now,
            "outcome": Ending.DONE.value,
        }
    return {
        "step": Step.ENDED.value,
        "task_ended_at": now,
        "ended_at": now,
        "outcome": Ending.DONE.value,
        "next_at": None,
    }


def restore_claim(job: Job, now: float, timing: Timing) -> dict[str, Any]:
    """Record, before SMH is asked, that a restore is being tried (and which try)."""
    return {"restore_attempts": job.restore_attempts + 1, "next_at": now + timing.step_lease}


def restore_delay(attempts: int) -> float:
    """Return how long to wait after the `attempts`-th failed restore before the next."""
    return min(RESTORE_RETRY_MOST, RESTORE_RETRY_SECONDS * 2.0 ** max(0, attempts - 1))


def after_restore(job: Job, error: str | None, now: float) -> dict[str, Any]:
    """End the job once SMH reads back the kept settings; else try again after a back-off."""
    if error is None:
        return {
            "step": Step.ENDED.value,
            "restored_at": now,
            "ended_at": now,
            "next_at": None,
            "last_error": None,
        }
    return {"next_at": now + restore_delay(job.restore_attempts), "last_error": error}


def cancel(job: Job, who: str, now: float) -> dict[str, Any] | None:
    """Cancel a job whose clear has not been sent: history goes back on at once, if it was on."""
    if not job.cancellable:
        return None
    return {"cancelled_at": now, "cancelled_by": who, **_give_up(job, Ending.CANCELLED, now)}


def _give_up(job: Job, ending: Ending, now: float) -> dict[str, Any]:
    """End a job before its clear: back to the kept settings if any were kept, else end now."""
    if job.kept is not None:
        return {"step": Step.RESTORE.value, "outcome": ending.value, "next_at": now}
    return {"step": Step.ENDED.value, "outcome": ending.value, "ended_at": now, "next_at": None}
