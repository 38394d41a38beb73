"""A library's guided clear and retention settings: the job's section (polled while it runs),
cancelling it, changing the settings, and turning history back on with earlier settings."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.actions import guided, retention
from smh_dashboard.domain import inputs
from smh_dashboard.domain import retention as limits
from smh_dashboard.live import poller
from smh_dashboard.storage import database, history_jobs
from smh_dashboard.web import auth
from smh_dashboard.web.libraries import after_change, library_or_404, library_page

bp = Blueprint("guided", __name__)


@bp.get("/libraries/<library_id>/history-job")
def history_job(library_id: str) -> ResponseReturnValue:
    """Render the library's guided clear, for htmx to swap in while it runs, with the banner
    at the top of the page (since when history is off) out of band: one poll for both."""
    library = library_or_404(library_id)
    with database.reading():
        # The same refresh pages start: it takes the job's due steps under the library's lease.
        poller.request_refresh(library)
        context = {
            "library": library,
            "guided": history_jobs.history_state(library.id),
            "history": poller.cached_history_settings(library.id),
            "poll_seconds_history": poller.poll_seconds(None),
            "now": clock.now(),
        }
    section = render_template("_guided.html", **context)
    return section + render_template("_history_banner.html", oob=True, **context)


@bp.post("/libraries/<library_id>/history-job/cancel")
def cancel_history_job(library_id: str) -> ResponseReturnValue:
    """Cancel the library's guided clear while its clear has not been sent."""
    library = library_or_404(library_id)
    result = guided.cancel_job(library, auth.current_who(), auth.current_address())
    if result.refused:
        return library_page(library, 409, guided_error=result.message)
    return after_change(library, result.message)


@bp.post("/libraries/<library_id>/history-settings")
def change_history_settings(library_id: str) -> ResponseReturnValue:
    """Write new retention settings (SMH's names); lowering a limit asks for the library id."""
    library = library_or_404(library_id)
    form = {name: request.form.get(name, "") for name in SETTINGS_FIELDS}
    try:
        wanted = limits.parse_settings(request.form)
    except inputs.InputError as error:
        return library_page(library, 400, settings_form=form, settings_error=str(error))
    confirmed = request.form.get("confirm", "").strip() == library.id
    change = retention.change_settings(
        library, auth.current_who(), auth.current_address(), wanted, confirmed
    )
    if change.needs_confirm:
        return library_page(
            library, 400, settings_form=form, settings_error=change.message, settings_confirm=True
        )
    if not change.done:
        return library_page(library, 409, settings_form=form, settings_error=change.message)
    return after_change(library, change.message)


@bp.post("/libraries/<library_id>/history-settings/restore")
def restore_history_settings(library_id: str) -> ResponseReturnValue:
    """Turn file history back on with the settings kept when it was switched off."""
    library = library_or_404(library_id)
    change = retention.restore_earlier(library, auth.current_who(), auth.current_address())
    if not change.done:
        return library_page(library, 409, guided_error=change.message)
    return after_change(library, change.message)


SETTINGS_FIELDS = ("enableFileHistory", "fileHistoryCount", "fileHistoryExpireDay", "mergeInterval")
