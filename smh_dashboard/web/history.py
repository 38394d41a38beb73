"""A library's file history: its settings as SMH reports them, clearing it, switching it off."""

from __future__ import annotations

import math

from flask import Blueprint, make_response, render_template, request
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.actions import clears, guided
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import gettext
from smh_dashboard.live import poller
from smh_dashboard.web import auth
from smh_dashboard.web.libraries import after_change, library_or_404, library_page

bp = Blueprint("history", __name__)


@bp.get("/libraries/<library_id>/history-settings")
def history_settings(library_id: str) -> ResponseReturnValue:
    """Render the library's file-history settings as SMH reports them, for htmx to swap in."""
    library = library_or_404(library_id)
    history = poller.history_settings(library)
    return render_template("_history.html", library=library, history=history, now=clock.now())


@bp.get("/libraries/<library_id>/history-glance")
def history_glance(library_id: str) -> ResponseReturnValue:
    """Render the index's one-phrase file history of a library, for htmx to swap in."""
    library = library_or_404(library_id)
    reading = poller.history_settings(library)
    return render_template("_history_glance.html", reading=reading)


@bp.post("/libraries/<library_id>/clear-history")
def clear_history(library_id: str) -> ResponseReturnValue:
    """Start clearing the library's historical versions once its id is typed to confirm."""
    library = library_or_404(library_id)
    typed = request.form.get("confirm", "").strip()
    if typed != library.id:
        why = (
            gettext("Nothing was cleared: type the library id %(id)s to confirm.", id=library.id)
            if not typed
            else gettext(
                "Nothing was cleared: “%(typed)s” is not this library's id (%(id)s).",
                typed=inputs.excerpt(typed),
                id=library.id,
            )
        )
        clears.refuse_clear(library, auth.current_who(), why, auth.current_address())
        return library_page(library, 400, clear_error=why)
    busy = guided.refuse_while_under_way(library, auth.current_who(), auth.current_address())
    if busy is not None:
        return library_page(library, 409, clear_error=busy)
    if request.form.get("restore_history") and _history_maybe_on(library):
        started = guided.start_guided_clear(
            library, auth.current_who(), auth.current_address(), restore=True
        )
        if started.refused:
            return library_page(library, 409, clear_error=started.message)
        return after_change(library, started.message)
    result = clears.start_clear(library, auth.current_who(), auth.current_address())
    if not result.done:
        status = _failure_status(result)
        response = make_response(library_page(library, status, clear_error=result.message))
        if result.retry_at is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(result.retry_at - clock.now())))
        return response
    return after_change(library, result.message)


@bp.post("/libraries/<library_id>/history-settings/disable")
def disable_history(library_id: str) -> ResponseReturnValue:
    """Switch the library's file history off, once the box saying so is ticked."""
    library = library_or_404(library_id)
    if request.form.get("confirm") != "off":
        why = gettext("File history is unchanged: tick the box to confirm switching it off.")
        return library_page(library, 400, history_error=why)
    result = clears.switch_history_off(library, auth.current_who(), auth.current_address())
    if not result.done:
        return library_page(library, _failure_status(result), history_error=result.message)
    return after_change(library, result.message)


def _history_maybe_on(library: Library) -> bool:
    """Tell whether history may be on (a guided clear then has settings to keep): SMH says so,
    or could not say."""
    reading = poller.history_settings(library)
    return reading.settings is None or reading.settings.enabled


def _failure_status(result: clears.Result) -> int:
    if result.retry_at is not None:
        return 429
    if result.unanswered:
        return 504
    if result.error is not None and result.error.status is not None and result.error.status < 500:
        return 409
    return 502
