"""A library's whole activity log: who changed what, and SMH's answer, a page at a time."""

from __future__ import annotations

import math

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.i18n import ngettext
from smh_dashboard.storage import activity
from smh_dashboard.web.libraries import library_or_404
from smh_dashboard.web.listing import filter_and_page

bp = Blueprint("activity", __name__)


@bp.get("/libraries/<library_id>/activity")
def library_activity(library_id: str) -> ResponseReturnValue:
    """Show the library's whole activity log, newest first, a page at a time."""
    library = library_or_404(library_id)
    _, page = filter_and_page()
    pages = max(1, math.ceil(activity.count_activity(library.id) / activity.PER_PAGE))
    if page > pages:
        message = ngettext(
            "There is no page %(page)d; this log has %(num)d.",
            "There is no page %(page)d; this log has %(num)d.",
            pages,
            page=page,
        )
        abort(404, description=message)
    entries = activity.list_activity(library.id, (page - 1) * activity.PER_PAGE, activity.PER_PAGE)
    return render_template(
        "activity.html",
        library=library,
        activity_entries=entries,
        page=page,
        pages=pages,
        now=clock.now(),
    )
