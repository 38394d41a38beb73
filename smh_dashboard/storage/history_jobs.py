"""Guided clears as rows: started once per library, each step written over the version it was
read at (so two processes never take the same step), and the settings kept when history was
switched off here."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from smh_dashboard.domain.guided import Job, Step, restoring, settings_data, settings_from
from smh_dashboard.smh.answers import HistorySettings
from smh_dashboard.storage import database
from smh_dashboard.storage.schema import MAX_ADDRESS_LENGTH, MAX_WHO_LENGTH, kept_history
from smh_dashboard.storage.schema import history_jobs as jobs

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Kept:
    """Settings kept when file history was switched off here: what, when and by whom."""

    settings: dict[str, Any]
    kept_at: float
    kept_by: str


def start_job(
    library_id: str, who: str, address: str | None, restore: bool, now: float
) -> Job | None:
    """Record a new guided clear of the library; None if one is under way already."""
    row = {
        "library_id": library_id,
        "created_at": now,
        "created_by": who[:MAX_WHO_LENGTH],
        "address": address[:MAX_ADDRESS_LENGTH] if address else None,
        "restore": restore,
        "step": Step.READ.value,
        "version": 1,
        "settle_tries": 0,
        "restore_attempts": 0,
        "next_at": now,
    }
    try:
        with database.begin() as conn:
            job_id = conn.execute(insert(jobs).values(row).returning(jobs.c.id)).scalar_one()
    except IntegrityError:
        # The partial unique index: one job under way per library.
        return None
    return get_job(job_id)


def get_job(job_id: int) -> Job | None:
    """Return one job as recorded."""
    with database.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return Job(**row._mapping) if row else None


# Read on every poll of every page (is a step due?), so built once, as the listings' are.
_CURRENT = select(jobs).where(
    jobs.c.library_id == bindparam("library_id"), jobs.c.ended_at.is_(None)
)
_NEWEST = (
    select(jobs).where(jobs.c.library_id == bindparam("library_id")).order_by(jobs.c.id.desc())
).limit(1)
_KEPT = select(kept_history).where(kept_history.c.library_id == bindparam("library_id"))


def current_job(library_id: str) -> Job | None:
    """Return the library's job under way, if any."""
    with database.connect() as conn:
        row = conn.execute(_CURRENT, {"library_id": library_id}).first()
    return Job(**row._mapping) if row else None


def newest_job(library_id: str) -> Job | None:
    """Return the library's newest job, under way or ended."""
    with database.connect() as conn:
        row = conn.execute(_NEWEST, {"library_id": library_id}).first()
    return Job(**row._mapping) if row else None


def latest_jobs(library_ids: Iterable[str]) -> dict[str, Job]:
    """Return each library's newest job, under way or ended."""
    ids = list(library_ids)
    newest = (
        select(jobs.c.library_id, jobs.c.id)
        .where(jobs.c.library_id.in_(ids))
        .order_by(jobs.c.library_id, jobs.c.id.desc())
    )
    found: dict[str, Job] = {}
    with database.connect() as conn:
        chosen: dict[str, int] = {}
        for library_id, job_id in conn.execute(newest):
            chosen.setdefault(library_id, job_id)
        if chosen:
            for row in conn.execute(select(jobs).where(jobs.c.id.in_(chosen.values()))):
                found[row.library_id] = Job(**row._mapping)
    return found


def move_job(job: Job, changes: dict[str, Any], conn: Connection | None = None) -> Job | None:
    """Write a step's record over the version the job was read at; None if another process
    wrote first (it took the step)."""
    values = dict(changes)
    if values.get("last_error"):
        values["last_error"] = values["last_error"][:MAX_ERROR_LENGTH]
    statement = (
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.version == job.version)
        .values(**values, version=job.version + 1)
    )
    if conn is not None:
        moved = conn.execute(statement).rowcount == 1
    else:
        with database.begin() as own:
            moved = own.execute(statement).rowcount == 1
    return dataclasses.replace(job, **values, version=job.version + 1) if moved else None


def mark_restored(job: Job, now: float) -> None:
    """Note that history of an ended job's library was turned back on (by a person, later)."""
    with database.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.restored_at.is_(None))
            .values(restored_at=now, version=jobs.c.version + 1)
        )


def keep_settings(library_id: str, settings: HistorySettings, who: str, now: float) -> None:
    """Keep the settings history had before it was switched off here."""
    row = {
        "settings": settings_data(restoring(settings)),
        "kept_at": now,
        "kept_by": who[:MAX_WHO_LENGTH],
    }
    statement = (
        database.upsert(kept_history)
        .values(library_id=library_id, **row)
        .on_conflict_do_update(index_elements=[kept_history.c.library_id], set_=row)
    )
    with database.begin() as conn:
        conn.execute(statement)


def kept_settings(library_id: str) -> Kept | None:
    """Return the settings kept when the library's history was last switched off here."""
    with database.connect() as conn:
        row = conn.execute(_KEPT, {"library_id": library_id}).first()
    return Kept(row.settings, row.kept_at, row.kept_by) if row else None


def forget_kept(library_id: str) -> None:
    """Drop the kept settings: history is on again."""
    with database.begin() as conn:
        conn.execute(delete(kept_history).where(kept_history.c.library_id == library_id))


@dataclass(frozen=True)
class HistoryState:
    """Where a library's file history stands as the dashboard's records tell it."""

    # The newest guided clear, under way or ended.
    job: Job | None
    # Settings to turn history back on with, and since when history has been off.
    earlier: HistorySettings | None
    off_since: float | None


def history_state(library_id: str) -> HistoryState:
    """Return the library's newest job, settings kept earlier and since when history is off."""
    job = newest_job(library_id)
    kept = kept_settings(library_id)
    if job is not None and job.history_off and job.kept is not None:
        return HistoryState(job, job.kept_settings, job.off_at)
    if kept is not None:
        return HistoryState(job, settings_from(kept.settings), kept.kept_at)
    return HistoryState(job, None, None)
