"""The dashboard's HTML pages, their live fragments and forms."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect

from smh_dashboard import clock
from smh_dashboard.actions import clears
from smh_dashboard.domain import inputs, states
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import gettext, ngettext
from smh_dashboard.live import coordination, poller
from smh_dashboard.storage import activity, database, listings, outbox, tasks
from smh_dashboard.web import auth, exports

bp = Blueprint("pages", __name__)
csrf = CSRFProtect()

TASK_ID = "task_id:task_id"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# A page redraws the "last checked" times it shows at this step even when nothing else changed:
# SMH is asked every few seconds, and redrawing for each answer would make every poll a render.
CHECKED_SHOWN_EVERY = 60.0


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


class PastEnd(Enum):
    """What a listing does when asked for a page past its last one."""

    NOT_FOUND = "not found"
    LAST_PAGE = "last page"


def init_app(app: Flask) -> None:
    """Register the pages and the CSRF guard that protects their forms."""
    csrf.init_app(app)
    app.url_map.converters["task_id"] = inputs.TaskIdConverter
    app.register_blueprint(bp)


def _library_or_404(library_id: str) -> Library:
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
    version = _libraries_version(outages)
    if request.args.get("v") == version:
        return _unchanged()
    return render_template("index_rows.html", **_libraries_context(configured, outages, version))


def _refresh(configured: list[Library]) -> dict[str, poller.Outage | None]:
    return {lib.id: poller.request_refresh(lib) for lib in configured}


def _libraries_context(
    configured: list[Library], outages: dict[str, poller.Outage | None], version: str | None = None
) -> dict:
    counts = listings.count_states(lib.id for lib in configured)
    summaries = {library_id: _summary(by_state) for library_id, by_state in counts.items()}
    everything = {name: sum(s[name] for s in summaries.values()) for name in _summary({})}
    worst = max((o for o in outages.values() if o), key=lambda o: o.retry_at, default=None)
    return {
        "title": _title(everything, gettext("SMH media libraries")),
        "libraries": configured,
        "summaries": summaries,
        "outages": outages,
        "live": any(s["polled"] for s in summaries.values()),
        "poll_seconds": poller.poll_seconds(worst),
        "now": clock.now(),
        "version": version or _libraries_version(outages),
    }


def _libraries_version(outages: dict[str, poller.Outage | None]) -> str:
    versions = tasks.get_versions(outages)
    worst = max((o for o in outages.values() if o), key=lambda o: o.retry_at, default=None)
    return _version(
        [(i, versions[i].version, _shown_outage(o)) for i, o in outages.items()],
        round(poller.poll_seconds(worst), 1),
    )


@bp.get("/libraries/<library_id>")
def library(library_id: str) -> ResponseReturnValue:
    """Show a library's tracked tasks, refreshed from SMH, with the form to track more."""
    library = _library_or_404(library_id)
    state, page = _listing_args()
    search = _search_arg()
    outage = poller.request_refresh(library)
    listing = _listing(library, state, page, outage, PastEnd.NOT_FOUND, search=search)
    return render_template("library.html", **listing, **_clearing(library), form={})


@bp.get("/libraries/<library_id>/rows")
def library_rows(library_id: str) -> ResponseReturnValue:
    """Render the live part of a library page, for htmx to swap in on each poll."""
    library = _library_or_404(library_id)
    state, page = _listing_args()
    search = _search_arg()
    outage = poller.request_refresh(library)
    version, frame = _listing_frame(library, state, page, outage, search)
    drawn = Drawn.parse(request.args.get("v"))
    if drawn is not None and drawn.frame == frame:
        if drawn.version == version:
            return _unchanged()
        changes = _changes(library, state, page, outage, drawn, version, search)
        if changes is not None:
            response = make_response(render_template("library_changes.html", **changes))
            # Every part swaps itself in by its id (out of band); the section stays.
            response.headers["HX-Reswap"] = "none"
            return response
    # A poll must always swap in: a page that emptied since (its tasks moved to another
    # filter) shows the last page rather than a 404 that htmx would not swap.
    drawn_at = (version, frame)
    listing = _listing(library, state, page, outage, PastEnd.LAST_PAGE, drawn_at, search)
    return render_template("library_rows.html", **listing)


@bp.get("/libraries/<library_id>/tasks.csv")
def tasks_csv(library_id: str) -> ResponseReturnValue:
    """Download the library's tasks as CSV, filtered and searched as its page is."""
    library, _, tasks = _exported(library_id)
    response = Response(stream_with_context(exports.csv_lines(tasks)), mimetype="text/csv")
    return _attachment(response, library, "csv")


@bp.get("/libraries/<library_id>/tasks.json")
def tasks_json(library_id: str) -> ResponseReturnValue:
    """Download the library's tasks as JSON, filtered and searched as its page is."""
    library, chosen, tasks = _exported(library_id)
    chunks = exports.json_chunks({"library_id": library.id, **chosen}, tasks)
    response = Response(stream_with_context(chunks), mimetype="application/json")
    return _attachment(response, library, "json")


def _exported(library_id: str) -> tuple[Library, dict[str, object], Iterator[Task]]:
    """Return the library, the filter and search chosen, and the tasks they select."""
    library = _library_or_404(library_id)
    state, _ = _listing_args()
    search = _search_arg()
    shown = states.FILTERS[state].states if state else None
    tasks = listings.iter_tasks(library.id, shown, search)
    return library, {"state": state, "q": search}, tasks


def _attachment(response: Response, library: Library, extension: str) -> Response:
    day = time.strftime("%Y-%m-%d", time.gmtime(clock.now()))
    filename = f"{library.id}-tasks-{day}.{extension}"
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response


def _changes(
    library: Library,
    state: str | None,
    page: int,
    outage: poller.Outage | None,
    drawn: Drawn,
    version: int,
    search: str | None,
) -> dict | None:
    """Return what a poll sends when its page shows the same rows, only some of them changed
    since it was drawn; None when the whole section must be drawn again."""
    summary = _summary(listings.count_states([library.id], search)[library.id])
    per_page = current_app.config["TASKS_PER_PAGE"]
    chosen = states.FILTERS[state].states if state else None
    shown = listings.list_task_versions(library.id, chosen, (page - 1) * per_page, per_page, search)
    live = summary["polled"] > 0
    rows = _rows_digest([i for i, _ in shown], _page_count(summary, state), live)
    changed = [i for i, v in shown if v > drawn.version]
    # Past half the rows, sending them costs about what the whole section does.
    if rows != drawn.rows or not live or len(changed) * 2 > len(shown):
        return None
    return {
        "oob": True,
        "title": _title(summary, library.name),
        "library": library,
        "tasks": listings.get_listed_tasks(library.id, changed) if changed else [],
        "summary": summary,
        "state": state,
        "q": search,
        "page": page,
        "poll_seconds": poller.poll_seconds(outage),
        "now": clock.now(),
        "version": str(Drawn(version, drawn.frame, rows)),
    }


def _unchanged() -> ResponseReturnValue:
    # htmx 2 and 4 swap nothing on a 204 and the element keeps its trigger, so polling goes on;
    # whatever ends polling changes the version, so that answer is always a render.
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def _version(*parts: object) -> str:
    # A digest, not Python's hash(): every worker process must give a page the same version.
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def _shown_outage(outage: poller.Outage | None) -> tuple | None:
    if outage is None:
        return None
    return (outage.since, outage.failures, outage.message, outage.status, outage.code)


def _live_frame(library: Library, outage: poller.Outage | None, *parts: object) -> tuple[int, str]:
    """Return the library's version and a digest of all else its live section depends on."""
    shown = tasks.get_versions([library.id])[library.id]
    checked = shown.checked_at // CHECKED_SHOWN_EVERY if shown.checked_at is not None else None
    poll_seconds = poller.poll_seconds(outage)
    since = poller.refreshing_since(library.id)
    waiting = since if since is not None and clock.now() - since >= poll_seconds else None
    return shown.version, _version(
        library.id,
        checked,
        _shown_outage(outage),
        outage.request_id if outage else None,
        round(poll_seconds, 1),
        waiting,
        auth.may_change(),
        *parts,
    )


def _listing_frame(
    library: Library,
    state: str | None,
    page: int,
    outage: poller.Outage | None,
    search: str | None = None,
) -> tuple[int, str]:
    per_page = current_app.config["TASKS_PER_PAGE"]
    return _live_frame(library, outage, state, page, per_page, search)


def _rows_digest(task_ids: list[int], pages: int, live: bool) -> str:
    return _version(task_ids, pages, live)


def _listing_args() -> tuple[str | None, int]:
    state = request.args.get("state") or None
    if state is not None and state not in states.FILTERS:
        message = gettext(
            "Unknown state filter “%(filter)s”: use one of %(names)s.",
            filter=inputs.excerpt(state),
            names=", ".join(states.FILTERS),
        )
        abort(400, description=message)
    page = request.args.get("page") or "1"
    if not (page.isascii() and page.isdigit() and len(page) <= 6 and int(page) >= 1):
        message = gettext("Page “%(page)s” is not a page number.", page=inputs.excerpt(page))
        abort(400, description=message)
    return state, int(page)


def _search_arg() -> str | None:
    try:
        return inputs.parse_search(request.args.get("q", ""))
    except inputs.InputError as error:
        abort(400, description=str(error))


def _listing(
    library: Library,
    state: str | None,
    page: int,
    outage: poller.Outage | None,
    past_end: PastEnd,
    drawn_at: tuple[int, str] | None = None,
    search: str | None = None,
) -> dict:
    # Read before the rows: a change committed in between is sent again, never missed.
    version, frame = drawn_at or _listing_frame(library, state, page, outage, search)
    summary = _summary(listings.count_states([library.id], search)[library.id])
    per_page = current_app.config["TASKS_PER_PAGE"]
    pages = _page_count(summary, state)
    if page > pages and past_end is PastEnd.NOT_FOUND:
        message = ngettext(
            "There is no page %(page)d; this list has %(num)d.",
            "There is no page %(page)d; this list has %(num)d.",
            pages,
            page=page,
        )
        abort(404, description=message)
    if page > pages:
        page = pages
        version, frame = _listing_frame(library, state, page, outage, search)
    tasks = listings.list_tasks(
        library.id,
        states.FILTERS[state].states if state else None,
        (page - 1) * per_page,
        per_page,
        search,
    )
    rows = _rows_digest([t.task_id for t in tasks], pages, summary["polled"] > 0)
    return {
        "title": _title(summary, library.name),
        "library": library,
        "tasks": tasks,
        "summary": summary,
        "state": state,
        "q": search,
        "page": page,
        "pages": pages,
        "outage": outage,
        "refreshing_since": poller.refreshing_since(library.id),
        "poll_seconds": poller.poll_seconds(outage),
        "now": clock.now(),
        "version": str(Drawn(version, frame, rows)),
    }


def _page_count(summary: dict[str, int], state: str | None) -> int:
    per_page: int = current_app.config["TASKS_PER_PAGE"]
    return max(1, math.ceil((summary[state] if state else summary["all"]) / per_page))


def _summary(by_state: dict[str, int]) -> dict[str, int]:
    summary = {
        name: sum(by_state.get(s, 0) for s in f.states) for name, f in states.FILTERS.items()
    }
    summary["all"] = sum(by_state.values())
    summary["polled"] = sum(by_state.get(s, 0) for s in states.POLLED)
    summary["ended_well"] = sum(by_state.get(s, 0) for s in states.ENDED_WELL)
    return summary


def _title(summary: dict[str, int], name: str) -> str:
    """Title a page by what it lists: how many run, or ✓ / ✕ once every one has ended."""
    if summary["running"]:
        return ngettext(
            "(%(num)d running) %(name)s",
            "(%(num)d running) %(name)s",
            summary["running"],
            name=name,
        )
    if not summary["all"] or summary["polled"]:
        return name
    if summary["ended_well"] == summary["all"]:
        return gettext("✓ %(name)s", name=name)
    return gettext("✕ %(name)s", name=name)


@bp.post("/libraries/<library_id>/tasks")
def track_tasks(library_id: str) -> ResponseReturnValue:
    """Track the task ids typed into the form, then go back to the library page."""
    library = _library_or_404(library_id)
    form = {"task_ids": request.form.get("task_ids", ""), "label": request.form.get("label", "")}
    try:
        ids = inputs.parse_task_ids(form["task_ids"])
        label = inputs.parse_label(form["label"])
    except inputs.InputError as error:
        listing = _listing(library, None, 1, poller.request_refresh(library), PastEnd.NOT_FOUND)
        shown = inputs.shown_back(form)
        page = render_template(
            "library.html", **listing, **_clearing(library), form=shown, form_error=str(error)
        )
        return page, 400
    new = tasks.track_tasks(library.id, ids, label, clock.now())
    already = len(ids) - len(new)
    message = ngettext("Now tracking %(num)d task.", "Now tracking %(num)d tasks.", len(new))
    if already:
        message += " " + ngettext(
            "%(num)d was already tracked.", "%(num)d were already tracked.", already
        )
    flash(message)
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/untrack")
def untrack_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Stop tracking one task."""
    library = _library_or_404(library_id)
    if tasks.untrack_tasks_undoably(library.id, [task_id], auth.current_who(), clock.now()):
        flash(gettext("Task %(task)d is no longer tracked.", task=task_id))
    else:
        flash(gettext("Task %(task)d was not tracked.", task=task_id))
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post("/libraries/<library_id>/tasks/untrack")
def untrack_selected(library_id: str) -> ResponseReturnValue:
    """Stop tracking the tasks ticked in the table; the last untrack can be undone."""
    library = _library_or_404(library_id)
    ids = _selected_ids()
    gone = tasks.untrack_tasks_undoably(library.id, ids, auth.current_who(), clock.now())
    if gone:
        flash(
            ngettext(
                "%(num)d task no longer tracked.", "%(num)d tasks no longer tracked.", len(gone)
            )
        )
    else:
        flash(gettext("No task was untracked."))
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post("/libraries/<library_id>/tasks/untrack/undo")
def undo_untrack(library_id: str) -> ResponseReturnValue:
    """Track again, as they were, the tasks of the library's last untrack."""
    library = _library_or_404(library_id)
    back = tasks.undo_untrack(library.id)
    if back:
        flash(ngettext("%(num)d task tracked again.", "%(num)d tasks tracked again.", len(back)))
    else:
        flash(gettext("Nothing to undo."))
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post("/libraries/<library_id>/tasks/recheck")
def recheck_selected(library_id: str) -> ResponseReturnValue:
    """Ask SMH again about the ticked tasks it did not know."""
    library = _library_or_404(library_id)
    rechecked = [i for i in _selected_ids() if tasks.recheck_task(library.id, i, clock.now())]
    if rechecked:
        flash(
            ngettext(
                "Checking %(num)d task with SMH again.",
                "Checking %(num)d tasks with SMH again.",
                len(rechecked),
            )
        )
    else:
        flash(gettext("None of the ticked tasks needed another check."))
    return redirect(url_for(".library", library_id=library.id), 303)


def _selected_ids() -> list[int]:
    picked = request.form.getlist("task_id")
    if not picked:
        abort(400, description=gettext("Tick at least one task first."))
    try:
        return inputs.parse_task_ids(" ".join(picked))
    except inputs.InputError as error:
        abort(400, description=str(error))


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/recheck")
def recheck_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Ask SMH again about a task it did not know."""
    library = _library_or_404(library_id)
    if tasks.recheck_task(library.id, task_id, clock.now()):
        flash(gettext("Checking task %(task)d with SMH again.", task=task_id))
    back = request.form.get("back") == "task"
    if back:
        return redirect(url_for(".task", library_id=library.id, task_id=task_id), 303)
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.get(f"/libraries/<library_id>/tasks/<{TASK_ID}>")
def task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Show everything known about one task: results, timeline and SMH's last answer."""
    library = _library_or_404(library_id)
    task, outage = _refreshed_task(library, task_id)
    if task is None:
        message = gettext(
            "Task %(task)d is not tracked in %(library)s.", task=task_id, library=library.name
        )
        abort(404, description=message)
    deliveries = outbox.list_deliveries(library.id, task_id)
    return render_template(
        "task.html", **_task_context(library, task, outage), deliveries=deliveries
    )


@bp.get(f"/libraries/<library_id>/tasks/<{TASK_ID}>/detail")
def task_detail(library_id: str, task_id: int) -> ResponseReturnValue:
    """Render the live part of a task page, for htmx to swap in on each poll."""
    library = _library_or_404(library_id)
    task, outage = _refreshed_task(library, task_id)
    if task is None:
        # Untracked in another tab: say so in a fragment that polls no more, since htmx
        # would not swap a 404 and the page would keep asking.
        return render_template("task_gone.html", library=library, task_id=task_id)
    version = _task_version(library, task, outage)
    if request.args.get("v") == version:
        return _unchanged()
    return render_template("task_detail.html", **_task_context(library, task, outage, version))


def _task_version(library: Library, task: Task, outage: poller.Outage | None) -> str:
    version, frame = _live_frame(library, outage, task.task_id)
    return f"{version}.{frame}"


def _refreshed_task(library: Library, task_id: int) -> tuple[Task | None, poller.Outage | None]:
    task = tasks.get_task(library.id, task_id)
    if task is None or not task.is_polled:
        return task, None
    outage = poller.request_refresh(library)
    return tasks.get_task(library.id, task_id), outage


def _task_context(
    library: Library, task: Task, outage: poller.Outage | None, version: str | None = None
) -> dict:
    return {
        "library": library,
        "task": task,
        "outage": outage,
        "refreshing_since": poller.refreshing_since(library.id),
        "poll_seconds": poller.poll_seconds(outage),
        "now": clock.now(),
        "version": version or _task_version(library, task, outage),
    }


def _clearing(library: Library, **messages: str) -> dict:
    return {
        # Pages never wait on SMH: without a fresh reading the page asks for it separately.
        "history": poller.cached_history_settings(library.id),
        "activity_entries": activity.list_activity(library.id),
        "last_untrack": tasks.last_untrack(library.id),
        **messages,
    }


def _library_page(library: Library, status: int, **messages: str) -> ResponseReturnValue:
    """Render the library page's first page with a message about a change that was not made."""
    listing = _listing(library, None, 1, poller.request_refresh(library), PastEnd.NOT_FOUND)
    page = render_template("library.html", **listing, **_clearing(library, **messages), form={})
    return page, status


def _failure_status(result: clears.Result) -> int:
    if result.retry_at is not None:
        return 429
    if result.unanswered:
        return 504
    if result.error is not None and result.error.status is not None and result.error.status < 500:
        return 409
    return 502


@bp.get("/libraries/<library_id>/history-settings")
def history_settings(library_id: str) -> ResponseReturnValue:
    """Render the library's file-history settings as SMH reports them, for htmx to swap in."""
    library = _library_or_404(library_id)
    history = poller.history_settings(library)
    return render_template("_history.html", library=library, history=history, now=clock.now())


@bp.post("/libraries/<library_id>/clear-history")
def clear_history(library_id: str) -> ResponseReturnValue:
    """Start clearing the library's historical versions once its id is typed to confirm."""
    library = _library_or_404(library_id)
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
        return _library_page(library, 400, clear_error=why)
    result = clears.start_clear(library, auth.current_who())
    if not result.done:
        status = _failure_status(result)
        response = make_response(_library_page(library, status, clear_error=result.message))
        if result.retry_at is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(result.retry_at - clock.now())))
        return response
    flash(result.message)
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post("/libraries/<library_id>/history-settings/disable")
def disable_history(library_id: str) -> ResponseReturnValue:
    """Switch the library's file history off, once the box saying so is ticked."""
    library = _library_or_404(library_id)
    if request.form.get("confirm") != "off":
        why = gettext("File history is unchanged: tick the box to confirm switching it off.")
        return _library_page(library, 400, history_error=why)
    result = clears.switch_history_off(library, auth.current_who())
    if not result.done:
        return _library_page(library, _failure_status(result), history_error=result.message)
    flash(result.message)
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.get("/libraries/<library_id>/activity")
def library_activity(library_id: str) -> ResponseReturnValue:
    """Show the library's whole activity log, newest first, a page at a time."""
    library = _library_or_404(library_id)
    _, page = _listing_args()
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


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Say whether the dashboard and the servers it needs answer (for load balancers)."""
    failed = []
    if not database.ping():
        failed.append("database")
    if not coordination.shared().ping():
        failed.append("redis")
    if failed:
        return {"status": "unavailable", "failed": failed}, 503
    return {"status": "ok"}


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    """Forbid inline scripts, framing and MIME sniffing on every answer."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.headers.get("HX-Request"):
        response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response
