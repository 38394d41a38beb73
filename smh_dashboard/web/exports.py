"""A library's tasks as files to download: CSV for spreadsheets, JSON for scripts, streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from smh_dashboard import badges, formats
from smh_dashboard.domain.tasks import Task

# The columns, in order: the CSV header and the keys of each JSON record.
FIELDS = (
    "task_id",
    "label",
    "state",
    "status",
    "versions_deleted",
    "error",
    "smh_status",
    "added_at",
    "first_seen_running_at",
    "seen_finished_at",
    "last_checked_at",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV as UTF-8 (so Chinese labels show) only when the file starts with a BOM.
BOM = "\ufeff"


def task_record(task: Task) -> dict[str, object]:
    """Return what an export says about one task, times as ISO 8601 in UTC."""
    return {
        "task_id": task.task_id,
        "label": task.label,
        "state": task.state,
        "status": str(badges.badge_for(task.state, task.smh_status).text),
        "versions_deleted": task.delete_count,
        "error": task.error,
        "smh_status": task.smh_status,
        "added_at": formats.iso(task.added_at),
        "first_seen_running_at": formats.iso(task.first_running_at) or None,
        "seen_finished_at": formats.iso(task.finished_at) or None,
        "last_checked_at": formats.iso(task.checked_at) or None,
    }


def csv_cell(value: object) -> object:
    """Return a value as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_lines(tasks: Iterable[Task]) -> Iterator[str]:
    """Yield a CSV file a line at a time: a BOM and the header, then one line per task."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield BOM + line(FIELDS)
    for task in tasks:
        record = task_record(task)
        yield line(csv_cell(record[name]) for name in FIELDS)


def json_chunks(header: dict[str, object], tasks: Iterable[Task]) -> Iterator[str]:
    """Yield a JSON object a piece at a time: `header`'s keys, then "tasks", one per piece."""
    opening = json.dumps(header, ensure_ascii=False)[:-1]
    yield opening + (", " if header else "") + '"tasks": ['
    for n, task in enumerate(tasks):
        yield ("" if n == 0 else ", ") + json.dumps(task_record(task), ensure_ascii=False)
    yield "]}\n"
