"""A library's task rows as the tasks section draws them, each kept drawn until what it shows
changes: a page load, filter click, search or poll that draws the whole section draws again only
the rows that changed, and tells the moments of all of them ("4 min ago") from its own now."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from flask import Flask, current_app
from jinja2 import Template, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from smh_dashboard import formats
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import get_locale
from smh_dashboard.web import auth

# Rows kept per process: the first pages of ten libraries, in both languages. A row kept takes
# about 1.6 KB (its HTML in parts, and its key), so at most ~1.6 MB.
ROWS_KEPT = 1000
TEMPLATE = "_task_row.html"


class DrawnRows:
    """The rows drawn lately from one template, the least recently shown dropped first past
    `size`; safe to share between a worker's threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[Hashable, formats.Drawing] = OrderedDict()
        self._template: Template | None = None
        self._lock = threading.Lock()

    def get(self, template: Template, keys: Sequence[Hashable]) -> list[formats.Drawing | None]:
        """Return the row kept under each key, None for one not kept or drawn from another
        template (one reloaded while developing)."""
        with self._lock:
            if template is not self._template:
                self._rows.clear()
                self._template = template
            found = [self._rows.get(key) for key in keys]
            for key, row in zip(keys, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(key)
        return found

    def put(self, drawn: Mapping[Hashable, formats.Drawing]) -> None:
        """Keep these rows, dropping the least recently shown past the size."""
        with self._lock:
            self._rows.update(drawn)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)


def init_app(app: Flask) -> None:
    """Keep the app's drawn rows, and let templates draw rows through them (`task_rows`)."""
    app.extensions["task_rows"] = DrawnRows(ROWS_KEPT)
    app.jinja_env.globals["task_rows"] = draw_rows


def shown(task: Task) -> tuple:
    """Return everything _task_row.html shows of a task: a row is drawn again when it changes."""
    # Not the task's version alone: the last check moves without one, and an id untracked and
    # tracked again starts again from version 0.
    return (
        task.task_id,
        task.label,
        task.state,
        task.smh_status,
        task.delete_count,
        task.error,
        task.added_at,
        task.first_running_at,
        task.finished_at,
        task.checked_at,
    )


@pass_context
def draw_rows(context: Context, tasks: Sequence[Task]) -> Markup:
    """Return the rows of these tasks, drawing only those not kept, as the calling template's
    context has them: its `library_url`, `oob` (each row swaps itself in) and `now`."""
    kept: DrawnRows = current_app.extensions["task_rows"]
    template = context.environment.get_template(TEMPLATE)
    may_change, oob = auth.may_change(), bool(context.get("oob"))
    library_url = context["library_url"]
    common = (get_locale(), may_change, library_url, oob)
    keys = [(*common, *shown(task)) for task in tasks]
    found = kept.get(template, keys)
    missing = {key: task for key, task, row in zip(keys, tasks, found, strict=True) if row is None}
    drawn: dict[Hashable, formats.Drawing] = {}
    if missing:
        # One module for all the rows to draw: the words they share are translated once.
        module: Any = template.make_module(
            {"library_url": library_url, "may_change": may_change, "oob": oob, "now": formats.LATER}
        )
        drawn = {key: formats.split_moments(module.row(t)) for key, t in missing.items()}
        kept.put(drawn)
    rows = [row if row is not None else drawn[key] for key, row in zip(keys, found, strict=True)]
    return formats.fill_moments(rows, context["now"])
