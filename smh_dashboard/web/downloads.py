"""A library's tasks to download, filtered and searched as its page is: CSV and JSON, streamed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, stream_with_context
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import TooManyRequests

from smh_dashboard import clock
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import ngettext
from smh_dashboard.storage import listings
from smh_dashboard.web import exports, quotas
from smh_dashboard.web.libraries import library_or_404
from smh_dashboard.web.listing import Listing

bp = Blueprint("downloads", __name__)


@bp.get("/libraries/<library_id>/tasks.csv")
def tasks_csv(library_id: str) -> ResponseReturnValue:
    """Download the library's tasks as CSV, filtered and searched as its page is."""
    listing = Listing.asked(library_or_404(library_id))
    release = _take_slot()
    lines = exports.csv_lines(_tasks(listing))
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.call_on_close(release)
    return _attachment(response, listing.library, "csv")


@bp.get("/libraries/<library_id>/tasks.json")
def tasks_json(library_id: str) -> ResponseReturnValue:
    """Download the library's tasks as JSON, filtered and searched as its page is."""
    listing = Listing.asked(library_or_404(library_id))
    header: dict[str, object] = {
        "library_id": listing.library.id,
        "state": listing.state,
        "q": listing.search,
    }
    release = _take_slot()
    chunks = exports.json_chunks(header, _tasks(listing))
    response = Response(stream_with_context(chunks), mimetype="application/json")
    response.call_on_close(release)
    return _attachment(response, listing.library, "json")


def _take_slot() -> Callable[[], None]:
    """Take one of this person's downloads at once (a worker thread streams each), or refuse."""
    release = quotas.take(quotas.EXPORTS)
    if release is None:
        most = quotas.limit(quotas.EXPORTS)
        message = ngettext(
            "You are already downloading %(num)d file; wait for it to finish.",
            "You are already downloading %(num)d files; wait for one to finish.",
            most,
        )
        raise TooManyRequests(message, retry_after=quotas.RETRY_SECONDS)
    return release


def _tasks(listing: Listing) -> Iterator[Task]:
    return listings.iter_tasks(listing.library.id, listing.shown_states, listing.search)


def _attachment(response: Response, library: Library, extension: str) -> Response:
    day = time.strftime("%Y-%m-%d", time.gmtime(clock.now()))
    filename = f"{library.id}-tasks-{day}.{extension}"
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response
