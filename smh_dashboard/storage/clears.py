"""The clear guard: one row per library holding the last clear the dashboard let start, so that
every process and every restart refuses a second one within SMH's minute."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from smh_dashboard.storage import database
from smh_dashboard.storage.schema import clears
from smh_dashboard.storage.schema import tasks as tasks_table

# Who holds a guard moved to the end of a wait SMH named (Retry-After): nobody asked at its time.
SMH_WAIT = ""


def claim_clear(library_id: str, who: str, now: float, interval: float) -> tuple[float, str] | None:
    """Take the library's clear guard unless a clear was let start within `interval` seconds.

    One statement takes it; return None when taken, else when and by whom it is held (SMH_WAIT:
    by a wait SMH named).
    """
    claim = (
        database.upsert(clears)
        .values(library_id=library_id, claimed_at=now, claimed_by=who, task_id=None)
        .on_conflict_do_update(
            index_elements=[clears.c.library_id],
            set_={"claimed_at": now, "claimed_by": who, "task_id": None},
            where=clears.c.claimed_at <= now - interval,
        )
    )
    with database.begin() as conn:
        if database.writes_row(conn, claim):
            return None
        row = conn.execute(
            select(clears.c.claimed_at, clears.c.claimed_by).where(
                clears.c.library_id == library_id
            )
        ).one()
    return row.claimed_at, row.claimed_by


def note_clear_task(conn: Connection, library_id: str, claimed_at: float, task_id: int) -> None:
    """Note on the guard claimed at `claimed_at` the task SMH started, in `conn`'s transaction."""
    conn.execute(
        update(clears)
        .where(clears.c.library_id == library_id, clears.c.claimed_at == claimed_at)
        .values(task_id=task_id)
    )


def move_clear_claim(conn: Connection, library_id: str, claimed_at: float, to: float) -> None:
    """Date the guard claimed at `claimed_at` as claimed at `to` instead, held by SMH_WAIT
    (SMH asked for a wait: no one asked for a clear at `to`)."""
    conn.execute(
        update(clears)
        .where(clears.c.library_id == library_id, clears.c.claimed_at == claimed_at)
        .values(claimed_at=to, claimed_by=SMH_WAIT)
    )


def release_clear(conn: Connection, library_id: str, claimed_at: float) -> None:
    """Drop the guard claimed at `claimed_at`: SMH started nothing, so nothing holds the minute."""
    conn.execute(
        delete(clears).where(clears.c.library_id == library_id, clears.c.claimed_at == claimed_at)
    )


@dataclass(frozen=True)
class LastClear:
    """The last clear the dashboard let start in a library, and what its task deleted."""

    at: float
    by: str
    task_id: int | None
    delete_count: int | None
    state: str | None


def clear_claim_since(library_id: str, since: float) -> tuple[bool, int | None]:
    """Tell whether the clear guard was taken at or after `since` (so SMH may have been asked),
    and the task SMH gave that clear, if it was recorded."""
    query = select(clears.c.task_id).where(
        clears.c.library_id == library_id, clears.c.claimed_at >= since
    )
    with database.connect() as conn:
        row = conn.execute(query).first()
    return (row is not None, row.task_id if row is not None else None)


def last_clears(library_ids: Iterable[str]) -> dict[str, LastClear]:
    """Return the last clear the dashboard let start in each library, with its task's result."""
    query = (
        select(
            clears.c.library_id,
            clears.c.claimed_at,
            clears.c.claimed_by,
            clears.c.task_id,
            tasks_table.c.delete_count,
            tasks_table.c.state,
        )
        .select_from(
            clears.outerjoin(
                tasks_table,
                (tasks_table.c.library_id == clears.c.library_id)
                & (tasks_table.c.task_id == clears.c.task_id),
            )
        )
        .where(clears.c.library_id.in_(list(library_ids)))
    )
    with database.connect() as conn:
        return {
            row.library_id: LastClear(
                row.claimed_at, row.claimed_by, row.task_id, row.delete_count, row.state
            )
            for row in conn.execute(query)
        }
