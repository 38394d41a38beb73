"""The clear guard: one row per library holding the last clear the dashboard let start, so that
every process and every restart refuses a second one within SMH's minute."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from smh_dashboard.storage import database
from smh_dashboard.storage.schema import clears

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
