"""The live-poll protocol: what a polled section showed (its version, `v=`), and the answer to a
poll: 204 when nothing it shows changed, only the rows that changed, or the whole section."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, replace

from flask import Response, abort, make_response, render_template, request
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import ngettext
from smh_dashboard.live import poller
from smh_dashboard.storage import listings, tasks
from smh_dashboard.web import auth
from smh_dashboard.web.listing import Listing, PastEnd, per_page

# A page redraws the "last checked" times it shows at this step even when nothing else changed:
# SMH is asked every few seconds, and redrawing for each answer would make every poll a render.
CHECKED_SHOWN_EVERY = 60.0
# A whole section (about 60 KB at 50 rows) compresses to a fifteenth at gzip's fastest level, for
# a fraction of a millisecond; a smaller answer is sent as it is.
COMPRESSED_FROM = 8 * 1024


@dataclass(frozen=True)
class Drawn:
    """What a polled tasks section showed when drawn, as its poll URL's `v` carries it: the
    library's version, a digest of all else it depends on, and a digest of its rows' ids in
    order with the page count and whether it polls."""

    version: int
    frame: str
    rows: str

    def __str__(self) -> str:
        return f"{self.version}.{self.frame}.{self.rows}"

    @classmethod
    def parse(cls, text: str | None) -> Drawn | None:
        """Read a poll's `v`; None (draw the whole section) for a missing or foreign one."""
        parts = (text or "").split(".")
        counter = parts[0]
        if len(parts) != 3 or not (counter.isascii() and counter.isdigit() and len(counter) < 20):
            return None
        return cls(int(counter), parts[1], parts[2])


def unchanged() -> Response:
    """Answer a poll whose section shows nothing new: 204, no body."""
    # htmx 2 and 4 swap nothing on a 204 and the element keeps its trigger, so polling goes on;
    # whatever ends polling changes the version, so that answer is always a render.
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def libraries_version(outages: dict[str, poller.Outage | None]) -> str:
    """Return the version of the library list: what it shows of each library, and its pace."""
    versions = tasks.get_versions(outages)
    worst = max((o for o in outages.values() if o), key=lambda o: o.retry_at, default=None)
    return _digest(
        [(i, versions[i].version, _shown_outage(o)) for i, o in outages.items()],
        round(poller.poll_seconds(worst), 1),
    )


def task_version(library: Library, task: Task, outage: poller.Outage | None) -> str:
    """Return the version of a task page's live part."""
    version, frame = _frame(library, outage, task.task_id)
    return f"{version}.{frame}"


def draw_listing(
    listing: Listing, past_end: PastEnd, drawn_at: tuple[int, str] | None = None
) -> dict:
    """Return the context of a library's whole tasks section, its version with it."""
    # Read before the rows: a change committed in between is sent again, never missed.
    version, frame = drawn_at or _listing_frame(listing)
    summary = listing.summary()
    pages = listing.page_count(summary)
    if listing.page > pages and past_end is PastEnd.NOT_FOUND:
        message = ngettext(
            "There is no page %(page)d; this list has %(num)d.",
            "There is no page %(page)d; this list has %(num)d.",
            pages,
            page=listing.page,
        )
        abort(404, description=message)
    if listing.page > pages:
        listing = replace(listing, page=pages)
        version, frame = _listing_frame(listing)
    tasks = listing.tasks()
    rows = _rows_digest([t.task_id for t in tasks], pages, summary["polled"] > 0)
    return {
        **listing.context(summary, tasks, str(Drawn(version, frame, rows))),
        "pages": pages,
        "outage": listing.outage,
        "refreshing_since": poller.refreshing_since(listing.library.id),
    }


def answer_listing_poll(listing: Listing, drawn_as: str | None) -> ResponseReturnValue:
    """Answer a library page's poll, given the version its section was drawn at."""
    version, frame = _listing_frame(listing)
    drawn = Drawn.parse(drawn_as)
    if drawn is not None and drawn.frame == frame:
        if drawn.version == version:
            return unchanged()
        changes = _changes(listing, drawn, version)
        if changes is not None:
            response = make_response(render_template("library_changes.html", **changes))
            # Every part swaps itself in by its id (out of band); the section stays.
            response.headers["HX-Reswap"] = "none"
            return response
    # A poll must always swap in: a page that emptied since (its tasks moved to another
    # filter) shows the last page rather than a 404 that htmx would not swap.
    context = draw_listing(listing, PastEnd.LAST_PAGE, (version, frame))
    return compressed(render_template("library_rows.html", **context))


def compressed(html: str) -> Response:
    """Return a poll's answer, gzipped when it is large and the browser takes gzip."""
    # Only a poll's answer: it carries no secret (the page's CSRF token stays outside the
    # section), so its compressed size cannot leak one to a page that probes it (BREACH).
    response = make_response(html)
    response.vary.add("Accept-Encoding")
    if len(html) >= COMPRESSED_FROM and "gzip" in request.accept_encodings:
        response.set_data(gzip.compress(response.get_data(), compresslevel=1, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    return response


def _changes(listing: Listing, drawn: Drawn, version: int) -> dict | None:
    """Return what a poll sends when its page shows the same rows, only some of them changed
    since it was drawn; None when the whole section must be drawn again."""
    summary = listing.summary()
    shown = listing.task_versions()
    live = summary["polled"] > 0
    rows = _rows_digest([i for i, _ in shown], listing.page_count(summary), live)
    changed = [i for i, v in shown if v > drawn.version]
    # Past half the rows, sending them costs about what the whole section does.
    if rows != drawn.rows or not live or len(changed) * 2 > len(shown):
        return None
    tasks = listings.get_listed_tasks(listing.library.id, changed) if changed else []
    return {**listing.context(summary, tasks, str(Drawn(version, drawn.frame, rows))), "oob": True}


def _digest(*parts: object) -> str:
    # A digest, not Python's hash(): every worker process must give a page the same version.
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def _shown_outage(outage: poller.Outage | None) -> tuple | None:
    if outage is None:
        return None
    return (outage.since, outage.failures, outage.message, outage.status, outage.code)


def _frame(library: Library, outage: poller.Outage | None, *parts: object) -> tuple[int, str]:
    """Return the library's version and a digest of all else its live section depends on."""
    shown = tasks.get_versions([library.id])[library.id]
    checked = shown.checked_at // CHECKED_SHOWN_EVERY if shown.checked_at is not None else None
    poll_seconds = poller.poll_seconds(outage)
    since = poller.refreshing_since(library.id)
    waiting = since if since is not None and clock.now() - since >= poll_seconds else None
    return shown.version, _digest(
        library.id,
        checked,
        _shown_outage(outage),
        outage.request_id if outage else None,
        round(poll_seconds, 1),
        waiting,
        auth.may_change(),
        *parts,
    )


def _listing_frame(listing: Listing) -> tuple[int, str]:
    return _frame(
        listing.library,
        listing.outage,
        listing.state,
        listing.page,
        per_page(),
        listing.search,
    )


def _rows_digest(task_ids: list[int], pages: int, live: bool) -> str:
    return _digest(task_ids, pages, live)
