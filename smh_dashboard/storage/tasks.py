"""Tracked tasks: tracking and untracking them (with undo), recording SMH's answers about them
(and queuing, in the same transaction, the message that a task ended), what a refresh asks of
the record before it calls SMH, and the library versions every change to what pages show moves
on (a poll compares them before rendering anything)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from smh_dashboard.domain import lifecycle, states
from smh_dashboard.domain.tasks import Task
from smh_dashboard.domain.webhooks import Webhook
from smh_dashboard.smh.answers import TaskStatus
from smh_dashboard.storage import database
from smh_dashboard.storage.schema import MAX_WHO_LENGTH, library_versions, outbox, tasks, untracked

# Rows read and written per transaction while recording answers: short transactions let page
# reads and people's writes (track, untrack) through between them, however large the refresh.
RECORD_CHUNK = 500


class TooManyTracked(Exception):
    """Tracking these tasks would take the library past its cap (SMH_MAX_TRACKED_PER_LIBRARY)."""

    def __init__(self, tracked: int, cap: int) -> None:
        super().__init__(f"{tracked} tracked, at most {cap}")
        self.tracked = tracked
        self.cap = cap


@dataclass(frozen=True)
class LibraryVersion:
    """How far a library's shown record has changed: a counter, and when SMH was last asked."""

    version: int
    checked_at: float | None


def _bump_version(
    conn: Connection, library_id: str, changed: bool = True, checked_at: float | None = None
) -> int:
    """Count a change to what the library's pages show, note when SMH was last asked, and
    return the library's version after it (rows changed in this transaction carry it)."""
    values: dict[str, Any] = {"library_id": library_id, "version": 1}
    bumped: dict[str, Any] = {"version": library_versions.c.version + (1 if changed else 0)}
    if checked_at is not None:
        values["checked_at"] = bumped["checked_at"] = checked_at
    # One upsert: concurrent writers (threads, workers, `flask refresh`) each add theirs.
    conn.execute(
        database.upsert(library_versions)
        .values(values)
        .on_conflict_do_update(index_elements=[library_versions.c.library_id], set_=bumped)
    )
    # Read back in the same transaction, which holds the row from the upsert until it ends:
    # no other writer can take this version, and none can commit a later one before this one.
    return int(
        conn.execute(
            select(library_versions.c.version).where(library_versions.c.library_id == library_id)
        ).scalar_one()
    )


# Built once: every poll runs it, and building a statement costs more than running it.
_VERSIONS = select(
    library_versions.c.library_id, library_versions.c.version, library_versions.c.checked_at
).where(library_versions.c.library_id.in_(bindparam("library_ids", expanding=True)))


def get_versions(library_ids: Iterable[str]) -> dict[str, LibraryVersion]:
    """Return each library's version (0, never checked, for one that never changed)."""
    versions = {i: LibraryVersion(0, None) for i in library_ids}
    with database.connect() as conn:
        rows = conn.execute(_VERSIONS, {"library_ids": list(versions)})
        for library_id, version, checked_at in rows:
            versions[library_id] = LibraryVersion(version, checked_at)
    return versions


def track_tasks(
    library_id: str,
    task_ids: Iterable[int],
    label: str | None,
    now: float,
    conn: Connection | None = None,
    cap: int | None = None,
    started: bool = False,
) -> list[int]:
    """Start tracking tasks; return the ids that were new (tracking twice is a no-op).

    Given a connection, the rows join its transaction (a clear tracks its task with its log).
    With a cap, raise TooManyTracked rather than let the library track more than `cap` tasks.
    `started` says SMH has just started them (a clear it accepted): they are recorded running
    from `now`, not waiting for a first answer, so that their end is told like any seen running.
    """
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return []
    first_state = {"state": states.RUNNING, "first_running_at": now} if started else {}
    rows = [
        {
            "library_id": library_id,
            "task_id": i,
            "label": label or None,
            "state": states.PENDING,
            "added_at": now,
        }
        | first_state
        for i in ids
    ]
    # One statement skips the ids already tracked, even by a request racing this one, and the
    # database says which rows it inserted: no read-then-write gap, so nothing to retry.
    insert_new = database.upsert(tasks).on_conflict_do_nothing()
    with nullcontext(conn) if conn is not None else database.begin() as db:
        if cap is not None:
            _check_cap(db, library_id, ids, cap)
        if db.dialect.insert_executemany_returning:
            inserted = set(db.scalars(insert_new.returning(tasks.c.task_id), rows))
        else:
            # SQLite before 3.35 has no RETURNING: one row at a time, each one counted.
            inserted = {row["task_id"] for row in rows if database.writes_row(db, insert_new, row)}
        if inserted:
            _bump_version(db, library_id)
    return [i for i in ids if i in inserted]


def _check_cap(conn: Connection, library_id: str, ids: list[int], cap: int) -> None:
    in_library = tasks.c.library_id == library_id
    tracked = conn.scalar(select(func.count()).where(in_library)) or 0
    already = conn.scalar(select(func.count()).where(in_library, tasks.c.task_id.in_(ids))) or 0
    if tracked + len(ids) - already > cap:
        raise TooManyTracked(tracked, cap)


def untrack_tasks(library_id: str, task_ids: Iterable[int], conn: Connection | None = None) -> int:
    """Stop tracking tasks and forget what was recorded about them; return how many were."""
    with nullcontext(conn) if conn is not None else database.begin() as db:
        result = db.execute(
            delete(tasks).where(
                tasks.c.library_id == library_id, tasks.c.task_id.in_(list(task_ids))
            )
        )
        if result.rowcount:
            _bump_version(db, library_id)
        return result.rowcount


@dataclass(frozen=True)
class Untrack:
    """A library's last untrack, which can still be undone."""

    at: float
    who: str
    task_ids: list[int]


def untrack_tasks_undoably(
    library_id: str,
    task_ids: Iterable[int],
    who: str,
    now: float,
    conn: Connection | None = None,
) -> list[int]:
    """Stop tracking tasks, keeping them whole as the library's last untrack; return their ids."""
    where = tasks.c.library_id == library_id, tasks.c.task_id.in_(list(task_ids))
    with nullcontext(conn) if conn is not None else database.begin() as conn:
        rows = [dict(row) for row in conn.execute(select(tasks).where(*where)).mappings()]
        if not rows:
            return []
        conn.execute(delete(tasks).where(*where))
        _bump_version(conn, library_id)
        kept = {"at": now, "who": who[:MAX_WHO_LENGTH], "rows": rows}
        conn.execute(
            database.upsert(untracked)
            .values(library_id=library_id, **kept)
            .on_conflict_do_update(index_elements=[untracked.c.library_id], set_=kept)
        )
    return sorted(row["task_id"] for row in rows)


# Built once: every library page asks.
_LAST_UNTRACK = select(untracked).where(untracked.c.library_id == bindparam("library_id"))


def last_untrack(library_id: str) -> Untrack | None:
    """Return the library's last untrack, if it was not undone."""
    with database.connect() as conn:
        row = conn.execute(_LAST_UNTRACK, {"library_id": library_id}).first()
    if row is None:
        return None
    return Untrack(row.at, row.who, sorted(r["task_id"] for r in row.rows))


def undo_untrack(library_id: str, conn: Connection | None = None) -> list[int]:
    """Track again the tasks of the library's last untrack, as they were; return their ids."""
    with nullcontext(conn) if conn is not None else database.begin() as conn:
        row = conn.execute(select(untracked).where(untracked.c.library_id == library_id)).first()
        if row is None:
            return []
        conn.execute(delete(untracked).where(untracked.c.library_id == library_id))
        restored = database.upsert(tasks).on_conflict_do_nothing()
        # Tracked again since (say, pasted back in): the newer record stays.
        back = [r["task_id"] for r in row.rows if database.writes_row(conn, restored, r)]
        if back:
            _bump_version(conn, library_id)
    return sorted(back)


def stale_ids(library_id: str, checked_before: float) -> list[int]:
    """Return the ids of polled tasks SMH was not asked about since `checked_before`."""
    with database.connect() as conn:
        return list(
            conn.scalars(
                select(tasks.c.task_id)
                .where(
                    tasks.c.library_id == library_id,
                    tasks.c.state.in_(states.POLLED),
                    or_(tasks.c.checked_at.is_(None), tasks.c.checked_at <= checked_before),
                )
                .order_by(tasks.c.task_id)
            )
        )


# Built once, as every poll asks it.
_DUE = (
    select(tasks.c.task_id)
    .where(
        tasks.c.library_id == bindparam("library_id"),
        tasks.c.state.in_(states.POLLED),
        or_(tasks.c.checked_at.is_(None), tasks.c.checked_at <= bindparam("checked_before")),
    )
    .limit(1)
)


def has_due(library_id: str, checked_before: float) -> bool:
    """Tell whether any polled task was not asked about since `checked_before` (cheaply)."""
    with database.connect() as conn:
        due = conn.scalar(_DUE, {"library_id": library_id, "checked_before": checked_before})
    return due is not None


def untracked_ids(library_id: str, task_ids: Iterable[int]) -> list[int]:
    """Return those of these ids that the library does not track, in the order given."""
    ids = list(task_ids)
    with database.connect() as conn:
        tracked = set(
            conn.scalars(
                select(tasks.c.task_id).where(
                    tasks.c.library_id == library_id, tasks.c.task_id.in_(ids)
                )
            )
        )
    return [i for i in ids if i not in tracked]


def known_answers(library_id: str, task_ids: Iterable[int]) -> dict[int, dict | None]:
    """Return SMH's last answer for each of these tasks it has answered for (None: unlisted now)."""
    with database.connect() as conn:
        rows = conn.execute(
            select(tasks.c.task_id, tasks.c.state, tasks.c.last_answer).where(
                tasks.c.library_id == library_id,
                tasks.c.task_id.in_(list(task_ids)),
                or_(tasks.c.state == states.MISSING, tasks.c.last_answer.is_not(None)),
            )
        )
        return {
            task_id: None if state == states.MISSING else answer for task_id, state, answer in rows
        }


# The row as the refresh read it: another process (a second worker, `flask refresh`) may have
# recorded a newer state since the read, and that one is never overwritten.
_AS_READ = (
    tasks.c.library_id == bindparam("b_library_id"),
    tasks.c.task_id == bindparam("b_task_id"),
    tasks.c.state == bindparam("b_state"),
)
_ANSWERED = (
    update(tasks)
    .where(*_AS_READ)
    .values(
        {
            name: bindparam(name)
            for name in (
                "state",
                "smh_status",
                "delete_count",
                "results",
                "last_answer",
                "missing_since",
                "first_running_at",
                "finished_at",
                "checked_at",
                "version",
            )
        }
    )
)
_UNLISTED = (
    update(tasks)
    .where(*_AS_READ)
    .values({name: bindparam(name) for name in ("state", "missing_since", "checked_at", "version")})
)
# What the lifecycle reads of a task, the version its row carries, and what a message about its
# end says beyond its new state.
_OBSERVED = (
    tasks.c.task_id,
    tasks.c.state,
    tasks.c.missing_since,
    tasks.c.first_running_at,
    tasks.c.finished_at,
    tasks.c.last_answer,
    tasks.c.version,
    tasks.c.label,
    tasks.c.smh_status,
    tasks.c.delete_count,
)


def record_statuses(
    library_id: str,
    statuses: Iterable[TaskStatus],
    now: float,
    grace_seconds: float,
    webhook: Webhook | None,
) -> None:
    """Store SMH's answers for tasks still polled; one unlisted past grace becomes missing.

    A task seen not ended before (running, or not found yet) that ends queues a message to
    `webhook`, when the library has one, in the same transaction as its end; one whose first
    known state is an end queues none, so that pasting old ids tells nobody anything.
    """
    by_id = {s.task_id: s for s in statuses}
    ids = list(by_id)
    for start in range(0, len(ids), RECORD_CHUNK):
        chunk = ids[start : start + RECORD_CHUNK]
        with database.begin() as conn:
            rows = conn.execute(
                select(*_OBSERVED).where(
                    tasks.c.library_id == library_id,
                    tasks.c.task_id.in_(chunk),
                    tasks.c.state.in_(states.POLLED),
                )
            ).mappings()
            answered: list[dict[str, Any]] = []
            unlisted: list[dict[str, Any]] = []
            ended: list[tuple[RowMapping, dict[str, Any]]] = []
            shown: list[dict[str, Any]] = []
            for row in rows.all():
                status = by_id[row["task_id"]]
                change = lifecycle.observe(row, status, now, grace_seconds)
                if lifecycle.shows_change(row, change):
                    shown.append(change)
                change |= {
                    "b_library_id": library_id,
                    "b_task_id": row["task_id"],
                    "b_state": row["state"],
                    "version": row["version"],
                }
                if webhook is not None and lifecycle.tells_end(row, change):
                    ended.append((row, change))
                else:
                    (unlisted if status.state == states.MISSING else answered).append(change)
            if not (answered or unlisted or ended):
                continue
            version = _bump_version(conn, library_id, bool(shown), checked_at=now)
            for change in shown:
                change["version"] = version
            if answered:
                conn.execute(_ANSWERED, answered)
            if unlisted:
                conn.execute(_UNLISTED, unlisted)
            for row, change in ended:
                # One at a time, to know which updates won: only the process whose update
                # ended the task queues its message, in the same transaction.
                ending = _ANSWERED if "smh_status" in change else _UNLISTED
                if conn.execute(ending, change).rowcount == 1 and webhook is not None:
                    queue_end(conn, _end(library_id, row, change, now), webhook, now)


def _end(library_id: str, row: RowMapping, change: dict[str, Any], now: float) -> dict[str, Any]:
    """Return what a message about a task's end says, from its row and the change that ended it."""
    return {
        "library_id": library_id,
        "task_id": row["task_id"],
        "state": change["state"],
        "smh_status": change.get("smh_status", row["smh_status"]),
        "delete_count": change.get("delete_count", row["delete_count"]),
        "label": row["label"],
        "finished_at": change.get("finished_at") or now,
    }


def queue_end(
    conn: Connection,
    end: dict[str, Any],
    webhook: Webhook,
    now: float,
) -> None:
    """Queue the message that a task ended, in `conn`'s transaction, unless it was queued before.

    `end` holds the task's library_id, task_id, state, smh_status, delete_count, label and
    finished_at as the change that ended it left them.
    """
    conn.execute(
        database.upsert(outbox)
        .values(
            **end,
            webhook=webhook.key,
            destination=webhook.masked[:300],
            format=webhook.format.value,
            created_at=now,
            attempts=0,
            next_at=now,
        )
        .on_conflict_do_nothing()
    )


def recheck_task(library_id: str, task_id: int, now: float, conn: Connection | None = None) -> bool:
    """Ask SMH again about a task it did not know or answered oddly, with a fresh grace period."""
    with nullcontext(conn) if conn is not None else database.begin() as conn:
        result = conn.execute(
            update(tasks)
            .where(
                tasks.c.library_id == library_id,
                tasks.c.task_id == task_id,
                tasks.c.state.in_(states.RECHECKABLE),
            )
            .values(state=states.PENDING, missing_since=None)
        )
        if result.rowcount == 1:
            version = _bump_version(conn, library_id)
            conn.execute(
                update(tasks)
                .where(tasks.c.library_id == library_id, tasks.c.task_id == task_id)
                .values(version=version)
            )
        return result.rowcount == 1


def get_task(library_id: str, task_id: int) -> Task | None:
    """Return one tracked task, or None if it is not tracked."""
    with database.connect() as conn:
        row = conn.execute(
            select(tasks).where(tasks.c.library_id == library_id, tasks.c.task_id == task_id)
        ).first()
    return Task(**row._mapping) if row else None


def prune_finished(before: float) -> int:
    """Forget every task that SMH is no longer asked about and that ended before `before`;
    return how many were forgotten.

    A task ended when it was seen finished, or else when it was last heard of.
    """
    ended_at = func.coalesce(
        tasks.c.finished_at, tasks.c.missing_since, tasks.c.checked_at, tasks.c.added_at
    )
    old = (tasks.c.state.not_in(states.POLLED), ended_at < before)
    with database.begin() as conn:
        library_ids = list(conn.scalars(select(tasks.c.library_id).where(*old).distinct()))
        if not library_ids:
            return 0
        removed = conn.execute(delete(tasks).where(*old)).rowcount
        for library_id in library_ids:
            _bump_version(conn, library_id)
        return removed
