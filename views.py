"""The dashboard's pages, their live fragments, and the JSON proxy of SMH's task query."""

from __future__ import annotations

import math
import re

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

import smh
import store
import tracker
from config import Library

bp = Blueprint("dashboard", __name__)
csrf = CSRFProtect()

TASK_ID_LIST = re.compile(r"[0-9]+(,[0-9]+)*")
TASK_ID = f"int(min=1, max={tracker.MAX_TASK_ID}):task_id"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    """Register the pages, the CSRF guard and the error pages."""
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, server_error)


def _library_or_404(library_id: str) -> Library:
    library = tracker.get_library(library_id)
    if library is None:
        abort(404, description=f"No media library “{library_id}” is configured here.")
    return library


@bp.get("/")
def index() -> ResponseReturnValue:
    """Show every configured library with its tasks counted by state."""
    return render_template("index.html", **_libraries_context())


@bp.get("/summary")
def index_rows() -> ResponseReturnValue:
    """Render the live part of the library list, for htmx to swap in on each poll."""
    return render_template("index_rows.html", **_libraries_context())


def _libraries_context() -> dict:
    libraries = tracker.libraries()
    outages = {lib.id: tracker.poll_library(lib) for lib in libraries}
    counts = store.count_states(lib.id for lib in libraries)
    summaries = {library_id: _summary(by_state) for library_id, by_state in counts.items()}
    running = sum(s["running"] for s in summaries.values())
    worst = max((o for o in outages.values() if o), key=lambda o: o.retry_at, default=None)
    return {
        "title": f"({running} running) SMH media libraries" if running else "SMH media libraries",
        "libraries": libraries,
        "summaries": summaries,
        "outages": outages,
        "live": any(s["polled"] for s in summaries.values()),
        "poll_seconds": tracker.poll_seconds(worst),
        "now": tracker.now(),
    }


@bp.get("/libraries/<library_id>")
def library(library_id: str) -> ResponseReturnValue:
    """Show a library's tracked tasks, refreshed from SMH, with the form to track more."""
    library = _library_or_404(library_id)
    state, page = _listing_args()
    outage = tracker.poll_library(library)
    listing = _listing(library, state, page, outage, past_end="404")
    return render_template("library.html", **listing, form={})


@bp.get("/libraries/<library_id>/rows")
def library_rows(library_id: str) -> ResponseReturnValue:
    """Render the live part of a library page, for htmx to swap in on each poll."""
    library = _library_or_404(library_id)
    state, page = _listing_args()
    outage = tracker.poll_library(library)
    # A poll must always swap in: a page that emptied since (its tasks moved to another
    # filter) shows the last page rather than a 404 that htmx would not swap.
    listing = _listing(library, state, page, outage, past_end="last page")
    return render_template("library_rows.html", **listing)


def _listing_args() -> tuple[str | None, int]:
    state = request.args.get("state") or None
    if state is not None and state not in store.FILTERS:
        message = f"Unknown state filter “{state}”: use running, done, failed or unknown."
        abort(400, description=message)
    page = request.args.get("page") or "1"
    if not (page.isascii() and page.isdigit() and len(page) <= 6 and int(page) >= 1):
        abort(400, description=f"Page “{page[:20]}” is not a page number.")
    return state, int(page)


def _listing(
    library: Library, state: str | None, page: int, outage: tracker.Outage | None, past_end: str
) -> dict:
    summary = _summary(store.count_states([library.id])[library.id])
    per_page = current_app.config["TASKS_PER_PAGE"]
    pages = max(1, math.ceil((summary[state] if state else summary["all"]) / per_page))
    if page > pages and past_end == "404":
        abort(404, description=f"There is no page {page}; this list has {pages}.")
    page = min(page, pages)
    tasks = store.list_tasks(
        library.id, store.FILTERS[state] if state else None, (page - 1) * per_page, per_page
    )
    running = f"({summary['running']} running) " if summary["running"] else ""
    return {
        "title": f"{running}{library.name}",
        "library": library,
        "tasks": tasks,
        "summary": summary,
        "state": state,
        "page": page,
        "pages": pages,
        "outage": outage,
        "poll_seconds": tracker.poll_seconds(outage),
        "now": tracker.now(),
    }


def _summary(by_state: dict[str, int]) -> dict[str, int]:
    summary = {
        name: sum(by_state.get(s, 0) for s in states) for name, states in store.FILTERS.items()
    }
    summary["all"] = sum(by_state.values())
    summary["polled"] = sum(by_state.get(s, 0) for s in store.POLLED_STATES)
    return summary


@bp.post("/libraries/<library_id>/tasks")
def track_tasks(library_id: str) -> ResponseReturnValue:
    """Track the task ids typed into the form, then go back to the library page."""
    library = _library_or_404(library_id)
    form = {"task_ids": request.form.get("task_ids", ""), "label": request.form.get("label", "")}
    label = form["label"].strip()
    try:
        ids = tracker.parse_task_ids(form["task_ids"])
        if len(label) > 200:
            raise ValueError("Keep the label under 200 characters.")
    except ValueError as error:
        listing = _listing(library, None, 1, tracker.poll_library(library), past_end="404")
        page = render_template("library.html", **listing, form=form, form_error=str(error))
        return page, 400
    new = store.track_tasks(library.id, ids, label, tracker.now())
    already = len(ids) - len(new)
    message = f"Now tracking {_plural(len(new), 'task')}."
    if already:
        message += f" {_plural(already, 'was', 'were')} already tracked."
    flash(message)
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/untrack")
def untrack_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Stop tracking one task."""
    library = _library_or_404(library_id)
    if store.untrack_tasks(library.id, [task_id]):
        flash(f"Task {task_id} is no longer tracked.")
    else:
        flash(f"Task {task_id} was not tracked.")
    return redirect(url_for(".library", library_id=library.id), 303)


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/recheck")
def recheck_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Ask SMH again about a task it did not know."""
    library = _library_or_404(library_id)
    if store.recheck_task(library.id, task_id, tracker.now()):
        flash(f"Checking task {task_id} with SMH again.")
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
        abort(404, description=f"Task {task_id} is not tracked in {library.name}.")
    return render_template("task.html", **_task_context(library, task, outage))


@bp.get(f"/libraries/<library_id>/tasks/<{TASK_ID}>/detail")
def task_detail(library_id: str, task_id: int) -> ResponseReturnValue:
    """Render the live part of a task page, for htmx to swap in on each poll."""
    library = _library_or_404(library_id)
    task, outage = _refreshed_task(library, task_id)
    if task is None:
        # Untracked in another tab: say so in a fragment that polls no more, since htmx
        # would not swap a 404 and the page would keep asking.
        return render_template("task_gone.html", library=library, task_id=task_id)
    return render_template("task_detail.html", **_task_context(library, task, outage))


def _refreshed_task(
    library: Library, task_id: int
) -> tuple[store.Task | None, tracker.Outage | None]:
    task = store.get_task(library.id, task_id)
    if task is None or not task.is_polled:
        return task, None
    outage = tracker.poll_library(library)
    return store.get_task(library.id, task_id), outage


def _task_context(library: Library, task: store.Task, outage: tracker.Outage | None) -> dict:
    return {
        "library": library,
        "task": task,
        "outage": outage,
        "poll_seconds": tracker.poll_seconds(outage),
        "now": tracker.now(),
    }


@bp.get("/api/v1/task/<library_id>/<task_id_list>")
def proxy_tasks(library_id: str, task_id_list: str) -> ResponseReturnValue:
    """Answer SMH's task query for a configured library, without a token, through the cache."""
    library = tracker.get_library(library_id)
    if library is None:
        return _smh_error(404, "LibraryNotFound", f"No media library {library_id} is configured.")
    if not TASK_ID_LIST.fullmatch(task_id_list):
        message = "TaskIdList must be task ids separated by commas, such as 10 or 10,12,13."
        return _smh_error(400, "ParamInvalid", message)
    if len(set(task_id_list.split(","))) > tracker.MAX_IDS_AT_ONCE:
        message = f"Ask for at most {tracker.MAX_IDS_AT_ONCE} task ids at once."
        return _smh_error(400, "TooManyItems", message)
    try:
        ids = tracker.parse_task_ids(task_id_list, separators=",")
    except ValueError as error:
        return _smh_error(400, "ParamInvalid", str(error))
    found, outage = tracker.fetch_statuses(library, ids)
    if outage is not None and len(found) < len(ids):
        return _outage_error(outage)
    items = [found[i].raw for i in ids if i in found and found[i].state != smh.MISSING]
    return jsonify(items)


def _outage_error(outage: tracker.Outage) -> Response:
    if outage.status is not None and 400 <= outage.status < 500:
        status, code = outage.status, outage.code or "UpstreamRefused"
    elif outage.is_timeout:
        status, code = 504, "GatewayTimeout"
    else:
        status, code = 502, "BadGateway"
    response = _smh_error(status, code, f"SMH failed: {outage.message}", outage.request_id)
    response.headers["Retry-After"] = str(max(1, math.ceil(outage.retry_at - tracker.now())))
    return response


def _smh_error(status: int, code: str, message: str, request_id: str | None = None) -> Response:
    body = {"code": code, "message": message}
    if request_id:
        body["requestId"] = request_id
    response = jsonify(body)
    response.status_code = status
    return response


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Say the dashboard is up, cheaply (for load balancers and the benchmark)."""
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


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def form_expired(error: CSRFError) -> ResponseReturnValue:
    """Explain a rejected form instead of a bare 400."""
    message = (
        "This form has expired or did not come from this dashboard. Reload the page and try again."
    )
    return render_template("error.html", status=400, message=message), 400


def http_error(error: HTTPException) -> ResponseReturnValue:
    """Show 4xx errors as a page, or in SMH's error shape on the API."""
    if _wants_json():
        code = {404: "RouteNotFound", 405: "MethodNotAllowed"}.get(error.code, "ParamInvalid")
        return _smh_error(error.code or 400, code, error.description or error.name)
    return render_template("error.html", status=error.code, message=error.description), error.code


def server_error(error: Exception) -> ResponseReturnValue:
    """Log an unexpected failure and show a plain page that leaks nothing."""
    if isinstance(error, HTTPException):
        return http_error(error)
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    message = "Something went wrong on the dashboard. The error was logged."
    if _wants_json():
        return _smh_error(500, "InternalServerError", message)
    return render_template("error.html", status=500, message=message), 500


def _plural(n: int, one: str, many: str | None = None) -> str:
    if many is None:
        return f"{n} {one}" if n == 1 else f"{n} {one}s"
    return f"{n} {one}" if n == 1 else f"{n} {many}"
