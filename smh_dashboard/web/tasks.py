"""A task's page and its live part, and the forms that track, untrack and re-check tasks."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.actions import tracking
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import gettext, ngettext
from smh_dashboard.live import poller
from smh_dashboard.storage import outbox, tasks
from smh_dashboard.storage.activity import Action
from smh_dashboard.web import auth, live
from smh_dashboard.web.libraries import after_change, library_or_404, library_page

bp = Blueprint("tasks", __name__)

TASK_ID = "task_id:task_id"


@bp.get(f"/libraries/<library_id>/tasks/<{TASK_ID}>")
def task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Show everything known about one task: results, timeline and SMH's last answer."""
    library = library_or_404(library_id)
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
    library = library_or_404(library_id)
    task, outage = _refreshed_task(library, task_id)
    if task is None:
        # Untracked in another tab: say so in a fragment that polls no more, since htmx
        # would not swap a 404 and the page would keep asking.
        return render_template("task_gone.html", library=library, task_id=task_id)
    version = live.task_version(library, task, outage)
    if request.args.get("v") == version:
        return live.unchanged()
    return render_template("task_detail.html", **_task_context(library, task, outage, version))


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
        "version": version or live.task_version(library, task, outage),
    }


@bp.post("/libraries/<library_id>/tasks")
def track_tasks(library_id: str) -> ResponseReturnValue:
    """Track the task ids typed into the form, then go back to the library page."""
    library = library_or_404(library_id)
    form = {"task_ids": request.form.get("task_ids", ""), "label": request.form.get("label", "")}
    try:
        ids = inputs.parse_task_ids(form["task_ids"])
        label = inputs.parse_label(form["label"])
        new = tracking.track(library, ids, label, auth.current_who(), auth.current_address())
    except inputs.InputError as error:
        return library_page(library, 400, form=inputs.shown_back(form), form_error=str(error))
    already = len(ids) - len(new)
    message = ngettext("Now tracking %(num)d task.", "Now tracking %(num)d tasks.", len(new))
    if already:
        message += " " + ngettext(
            "%(num)d was already tracked.", "%(num)d were already tracked.", already
        )
    return after_change(library, message)


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/untrack")
def untrack_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Stop tracking one task."""
    library = library_or_404(library_id)
    if tracking.untrack(library, [task_id], auth.current_who(), auth.current_address()):
        message = gettext("Task %(task)d is no longer tracked.", task=task_id)
    else:
        message = gettext("Task %(task)d was not tracked.", task=task_id)
    return after_change(library, message)


@bp.post("/libraries/<library_id>/tasks/untrack")
def untrack_selected(library_id: str) -> ResponseReturnValue:
    """Stop tracking the tasks ticked in the table; the last untrack can be undone."""
    library = library_or_404(library_id)
    gone = tracking.untrack(library, _selected_ids(), auth.current_who(), auth.current_address())
    return after_change(library, _how_many(Action.UNTRACK, gone))


@bp.post("/libraries/<library_id>/tasks/untrack/undo")
def undo_untrack(library_id: str) -> ResponseReturnValue:
    """Track again, as they were, the tasks of the library's last untrack."""
    library = library_or_404(library_id)
    back = tracking.undo_untrack(library, auth.current_who(), auth.current_address())
    return after_change(library, _how_many(Action.UNDO_UNTRACK, back))


@bp.post("/libraries/<library_id>/tasks/recheck")
def recheck_selected(library_id: str) -> ResponseReturnValue:
    """Ask SMH again about the ticked tasks it did not know."""
    library = library_or_404(library_id)
    again = tracking.recheck(library, _selected_ids(), auth.current_who(), auth.current_address())
    return after_change(library, _how_many(Action.RECHECK, again))


@bp.post(f"/libraries/<library_id>/tasks/<{TASK_ID}>/recheck")
def recheck_task(library_id: str, task_id: int) -> ResponseReturnValue:
    """Ask SMH again about a task it did not know."""
    library = library_or_404(library_id)
    message = None
    if tracking.recheck(library, [task_id], auth.current_who(), auth.current_address()):
        message = gettext("Checking task %(task)d with SMH again.", task=task_id)
    back_to_task = request.form.get("back") == "task"
    return after_change(library, message, task_id if back_to_task else None)


def _how_many(action: Action, changed: list[int]) -> str:
    # What the page says after a change to the ticked tasks (or undoing the last untrack): how
    # many it changed, or that it changed none. An if for each change, not a table: pybabel
    # extracts only literal gettext and ngettext calls.
    num = len(changed)
    if action is Action.UNTRACK:
        if changed:
            return ngettext(
                "%(num)d task no longer tracked.", "%(num)d tasks no longer tracked.", num
            )
        return gettext("No task was untracked.")
    if action is Action.UNDO_UNTRACK:
        if changed:
            return ngettext("%(num)d task tracked again.", "%(num)d tasks tracked again.", num)
        return gettext("Nothing to undo.")
    if action is Action.RECHECK:
        if changed:
            return ngettext(
                "Checking %(num)d task with SMH again.",
                "Checking %(num)d tasks with SMH again.",
                num,
            )
        return gettext("None of the ticked tasks needed another check.")
    raise ValueError(f"{action} is not a change to ticked tasks")


def _selected_ids() -> list[int]:
    picked = request.form.getlist("task_id")
    if not picked:
        abort(400, description=gettext("Tick at least one task first."))
    try:
        return inputs.parse_task_ids(" ".join(picked))
    except inputs.InputError as error:
        abort(400, description=str(error))
