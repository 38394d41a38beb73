"""The library list and each library's page, their live parts, and where a form's change returns."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.i18n import gettext
from smh_dashboard.live import poller
from smh_dashboard.storage import activity, clears, database, history_jobs, listings, tasks
from smh_dashboard.web import auth, live
from smh_dashboard.web.listing import Listing, PastEnd, summarise, title

bp = Blueprint("libraries", __name__)


def library_or_404(library_id: str) -> Library:
    """Return the library with this id if the reader may see it; 404 otherwise."""
    library = auth.visible_library(library_id)
    if library is None:
        message = gettext(
            "No media library “%(library)s” is configured here.", library=inputs.excerpt(library_id)
        )
        abort(404, description=message)
    return library


@bp.get("/")
def index() -> ResponseReturnValue:
    """Show every configured library with its tasks counted by state."""
    configured = auth.visible_libraries()
    return render_template("index.html", **_libraries_context(configured, _refresh(configured)))


@bp.get("/summary")
def index_rows() -> ResponseReturnValue:
    """Render the live part of the library list, for htmx to swap in on each poll."""
    configured = auth.visible_libraries()
    outages = _refresh(configured)
    version = live.libraries_version(outages)
    if request.args.get("v") == version:
        return live.unchanged()
    return render_template("index_rows.html", **_libraries_context(configured, outages, version))


def _refresh(configured: list[Library]) -> dict[str, poller.Outage | None]:
    return {lib.id: poller.request_refresh(lib) for lib in configured}


def _libraries_context(
    configured: list[Library], outages: dict[str, poller.Outage | None], version: str | None = None
) -> dict:
    ids = [lib.id for lib in configured]
    counts = listings.count_states(ids)
    summaries = {library_id: summarise(by_state) for library_id, by_state in counts.items()}
    everything = {name: sum(s[name] for s in summaries.values()) for name in summarise({})}
    worst = max((o for o in outages.values() if o), key=lambda o: o.retry_at, default=None)
    return {
        "title": title(everything, gettext("SMH media libraries")),
        "libraries": configured,
        "summaries": summaries,
        "outages": outages,
        "live": any(s["polled"] for s in summaries.values()),
        "poll_seconds": poller.poll_seconds(worst),
        "now": clock.now(),
        "version": version or live.libraries_version(outages),
        # File history at a glance: SMH's last reading (never waited for), the last clear and
        # the newest guided clear.
        "histories": {i: poller.cached_history_settings(i) for i in ids},
        "last_clears": clears.last_clears(ids),
        "jobs": history_jobs.latest_jobs(ids),
    }


@bp.get("/libraries/<library_id>")
def library(library_id: str) -> ResponseReturnValue:
    """Show a library's tracked tasks, refreshed from SMH, with the form to track more."""
    library = library_or_404(library_id)
    with database.reading():
        listing = Listing.asked(library).refreshed()
        context = live.draw_listing(listing, PastEnd.NOT_FOUND)
        return render_template("library.html", **context, **_clearing(library), form={})


@bp.get("/libraries/<library_id>/rows")
def library_rows(library_id: str) -> ResponseReturnValue:
    """Render the live part of a library page, for htmx to swap in on each poll."""
    library = library_or_404(library_id)
    with database.reading():
        listing = Listing.asked(library).refreshed()
        return live.answer_listing_poll(listing, request.args.get("v"))


def library_page(
    library: Library, status: int, form: dict[str, str] | None = None, **messages: object
) -> ResponseReturnValue:
    """Render the library page's first page again, with what was typed and why nothing changed."""
    listing = Listing(library).refreshed()
    context = live.draw_listing(listing, PastEnd.NOT_FOUND)
    clearing = _clearing(library)
    page = render_template("library.html", **context, **clearing, form=form or {}, **messages)
    return page, status


def after_change(
    library: Library, message: str | None, task_id: int | None = None
) -> ResponseReturnValue:
    """Say what a form changed, then send the browser back to the library's page (or the task's)
    with a GET, so that reloading it posts nothing again."""
    if message is not None:
        flash(message)
    if task_id is not None:
        return redirect(url_for("tasks.task", library_id=library.id, task_id=task_id), 303)
    return redirect(url_for("libraries.library", library_id=library.id), 303)


def _clearing(library: Library) -> dict:
    return {
        # Pages never wait on SMH: without a fresh reading the page asks for it separately.
        "history": poller.cached_history_settings(library.id),
        "activity_entries": activity.list_activity(library.id),
        "last_untrack": tasks.last_untrack(library.id),
        "guided": history_jobs.history_state(library.id),
        "poll_seconds_history": poller.poll_seconds(None),
    }
