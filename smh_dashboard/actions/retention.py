"""A library's retention settings: changing them (lowering a limit only once confirmed), turning
history back on with settings kept earlier, and where history stands for the pages."""

from __future__ import annotations

from dataclasses import dataclass

from smh_dashboard import clock, registry
from smh_dashboard.actions import guided
from smh_dashboard.domain import retention
from smh_dashboard.domain.guided import restoring
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import gettext
from smh_dashboard.live import poller
from smh_dashboard.smh.answers import HistorySettings, SMHError
from smh_dashboard.storage import activity, history_jobs
from smh_dashboard.storage.activity import Action, Outcome


@dataclass(frozen=True)
class Change:
    """What came of a settings change: what to say, and why it was not made."""

    message: str
    done: bool = False
    needs_confirm: bool = False


def change_settings(
    library: Library, who: str, address: str | None, wanted: HistorySettings, confirmed: bool
) -> Change:
    """Write new retention settings to SMH; a lower limit needs `confirmed` (the library id)."""
    now = clock.now()
    if history_jobs.current_job(library.id) is not None:
        message = gettext(
            "The settings are unchanged: a guided clear of this library is under way and "
            "sets them itself."
        )
        return Change(message)
    try:
        before: HistorySettings | None = poller.history_settings(library).settings
        if before is None:
            before = registry.client_for(library.id).get_history_settings()
    except SMHError as error:
        message = gettext("The settings were not changed: %(said)s.", said=str(error))
        _log(library, who, address, now, Action.HISTORY_SETTINGS, Outcome.REFUSED, message, error)
        return Change(message)
    if retention.lowers_a_limit(before, wanted) and not confirmed:
        message = gettext(
            "The settings are unchanged: fewer versions or fewer days let SMH delete versions "
            "it keeps now. Type the library id %(id)s to confirm.",
            id=library.id,
        )
        return Change(message, needs_confirm=True)
    error_text = guided.write_settings(library, wanted)
    if error_text is not None:
        message = gettext("The settings were not changed: %(said)s.", said=error_text)
        _log(library, who, address, now, Action.HISTORY_SETTINGS, Outcome.REFUSED, message)
        return Change(message)
    if wanted.enabled:
        history_jobs.forget_kept(library.id)
    elif before.enabled:
        history_jobs.keep_settings(library.id, before, who, now)
    message = gettext(
        "File-history settings: %(before)s → %(after)s.",
        before=retention.describe(before),
        after=retention.describe(wanted),
    )
    _log(library, who, address, now, Action.HISTORY_SETTINGS, Outcome.DONE, message)
    return Change(message, done=True)


def restore_earlier(library: Library, who: str, address: str | None) -> Change:
    """Turn history back on with the settings kept when it was switched off (here or by a job)."""
    now = clock.now()
    state = history_jobs.history_state(library.id)
    if state.job is not None and state.job.under_way:
        return Change(gettext("Nothing changed: a guided clear of this library is under way."))
    if state.earlier is None:
        return Change(gettext("Nothing changed: no earlier settings of this library are known."))
    wanted = restoring(state.earlier)
    error_text = guided.write_settings(library, wanted)
    if error_text is not None:
        message = gettext("File history was not turned back on: %(said)s.", said=error_text)
        _log(library, who, address, now, Action.RESTORE_HISTORY, Outcome.REFUSED, message)
        return Change(message)
    history_jobs.forget_kept(library.id)
    if state.job is not None and state.job.history_off:
        history_jobs.mark_restored(state.job, now)
    message = gettext(
        "File history is on again with the earlier settings: %(settings)s.",
        settings=retention.describe(wanted),
    )
    _log(library, who, address, now, Action.RESTORE_HISTORY, Outcome.DONE, message)
    return Change(message, done=True)


def _log(
    library: Library,
    who: str,
    address: str | None,
    now: float,
    action: Action,
    outcome: Outcome,
    message: str,
    error: SMHError | None = None,
) -> None:
    """Add a settings change (or its refusal, with SMH's error) to the library's activity log."""
    activity.record_activity(
        library.id, who, action, outcome, message, now, error=error, address=address
    )
