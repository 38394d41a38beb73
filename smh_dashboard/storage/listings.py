"""What pages list of a library's tasks: pages of them newest first, narrowed by state or by a
search, the versions a poll compares, and counts by state."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    null,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.sql.elements import ColumnElement

from smh_dashboard.domain import inputs, states
from smh_dashboard.domain.tasks import Task
from smh_dashboard.storage import database
from smh_dashboard.storage.schema import tasks


def _matching(search: str | None) -> ColumnElement[bool]:
    """Return the condition for tasks whose id is or starts with `search`, or whose label has it."""
    if not search:
        return true()
    pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    in_label = tasks.c.label.ilike(f"%{pattern}%", escape="\\")
    if not (search.isascii() and search.isdigit()):
        return in_label
    by_id = tasks.c.task_id == int(search) if int(search) <= inputs.MAX_TASK_ID else false()
    id_prefix = cast(tasks.c.task_id, String).like(f"{pattern}%", escape="\\")
    return or_(by_id, id_prefix, in_label)


# Listings read a failed task's result entries (its error) and nothing else of SMH's answer:
# decoding every row's entries and last answer on every poll would cost more than the page.
# In the order of Task's fields, so that each row makes a Task as it comes (building one from
# the row's mapping was a fifth of drawing a page of 50 rows).
_READ_AS = {
    "results": type_coerce(case((tasks.c.state == states.FAILED, tasks.c.results)), JSON),
    "last_answer": null(),
}
_LISTED = tuple(
    _READ_AS[f.name].label(f.name) if f.name in _READ_AS else tasks.c[f.name]
    for f in dataclasses.fields(Task)
)
_NEWEST_FIRST = (tasks.c.added_at.desc(), tasks.c.task_id.desc())


def list_tasks(
    library_id: str,
    states: Iterable[str] | None,
    offset: int = 0,
    limit: int | None = None,
    search: str | None = None,
) -> list[Task]:
    """Return one page of the library's tasks, newest first, optionally only some states or
    those matching a search (see _matching).

    A listing leaves out SMH's last answer (None here), and the result entries of every task
    but a failed one; tasks.get_task has them all.
    """
    values: dict[str, Any] = {"library_id": library_id, "offset": offset, "limit": limit}
    if search or limit is None:
        query = _listing(_LISTED, library_id, states, search).offset(offset).limit(limit)
        values = {}
    elif states is None:
        query = _TASKS_LISTED
    else:
        query, values["states"] = _TASKS_LISTED_IN_STATES, list(states)
    with database.connect() as conn:
        return [Task(*row) for row in conn.execute(query, values)]


def iter_tasks(
    library_id: str, states: Iterable[str] | None, search: str | None = None, batch: int = 500
) -> Iterator[Task]:
    """Yield all the library's tasks a listing would show, newest first, a batch per query.

    Each batch starts after the last row of the one before (not at an offset), on a connection
    of its own, so that a slow reader holds no transaction open and skips or repeats no row.
    """
    state_list = list(states) if states is not None else None
    after: tuple[float, int] | None = None
    while True:
        query = _listing(_LISTED, library_id, state_list, search)
        if after is not None:
            added_at, task_id = after
            query = query.where(
                or_(
                    tasks.c.added_at < added_at,
                    and_(tasks.c.added_at == added_at, tasks.c.task_id < task_id),
                )
            )
        with database.connect() as conn:
            rows = conn.execute(query.limit(batch)).all()
        yield from (Task(*row) for row in rows)
        if len(rows) < batch:
            return
        after = (rows[-1].added_at, rows[-1].task_id)


def list_task_versions(
    library_id: str,
    states: Iterable[str] | None,
    offset: int,
    limit: int,
    search: str | None = None,
) -> list[tuple[int, int]]:
    """Return the (task id, version) of each task list_tasks would return, in its order."""
    values: dict[str, Any] = {"library_id": library_id, "offset": offset, "limit": limit}
    if search:
        columns = (tasks.c.task_id, tasks.c.version)
        query = _listing(columns, library_id, states, search).offset(offset).limit(limit)
    elif states is None:
        query = _VERSIONS_LISTED
    else:
        query, values["states"] = _VERSIONS_LISTED_IN_STATES, list(states)
    with database.connect() as conn:
        return [(i, v) for i, v in conn.execute(query, values)]


def get_listed_tasks(library_id: str, task_ids: Iterable[int]) -> list[Task]:
    """Return these tasks as a listing shows them, in the listing's order."""
    values = {"library_id": library_id, "task_ids": list(task_ids)}
    with database.connect() as conn:
        rows = conn.execute(_LISTED_BY_ID, values)
        return [Task(*row) for row in rows]


def _listing(
    columns: Iterable[ColumnElement[Any]],
    library_id: Any,
    states: Iterable[str] | None,
    search: str | None = None,
) -> Select:
    query = select(*columns).where(tasks.c.library_id == library_id)
    if search:
        query = query.where(_matching(search))
    if states is not None:
        query = query.where(tasks.c.state.in_(states))
    return query.order_by(*_NEWEST_FIRST)


# Built once, as every page and every poll that finds a change runs them: building a statement
# costs about what running it does.
_TASKS_LISTED = (
    _listing(_LISTED, bindparam("library_id"), None)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_TASKS_LISTED_IN_STATES = (
    _listing(_LISTED, bindparam("library_id"), bindparam("states", expanding=True))
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_VERSIONS_LISTED = (
    _listing((tasks.c.task_id, tasks.c.version), bindparam("library_id"), None)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_VERSIONS_LISTED_IN_STATES = (
    _listing(
        (tasks.c.task_id, tasks.c.version),
        bindparam("library_id"),
        bindparam("states", expanding=True),
    )
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_LISTED_BY_ID = _listing(_LISTED, bindparam("library_id"), None).where(
    tasks.c.task_id.in_(bindparam("task_ids", expanding=True))
)
_COUNTS = (
    select(tasks.c.library_id, tasks.c.state, func.count())
    .where(tasks.c.library_id.in_(bindparam("library_ids", expanding=True)))
    .group_by(tasks.c.library_id, tasks.c.state)
)


def count_states(
    library_ids: Iterable[str], search: str | None = None
) -> dict[str, dict[str, int]]:
    """Count tasks by state for each library ({library_id: {state: n}}), only matches if asked."""
    counts: dict[str, dict[str, int]] = {i: {} for i in library_ids}
    query = _COUNTS if not search else _COUNTS.where(_matching(search))
    with database.connect() as conn:
        for library_id, state, n in conn.execute(query, {"library_ids": list(counts)}):
            counts[library_id][state] = n
    return counts
