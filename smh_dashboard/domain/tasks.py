"""A tracked task as the dashboard last knew it: plain data, read by storage and shown by pages."""

from __future__ import annotations

from dataclasses import dataclass

from smh_dashboard.domain import states


@dataclass(frozen=True)
class Task:
    """One tracked task as the dashboard last knew it; times are Unix seconds."""

    library_id: str
    task_id: int
    label: str | None
    state: str
    smh_status: int | None
    delete_count: int | None
    results: list | None
    last_answer: dict | None
    added_at: float
    missing_since: float | None
    first_running_at: float | None
    finished_at: float | None
    checked_at: float | None
    version: int = 0

    @property
    def is_polled(self) -> bool:
        """Tell whether the dashboard still asks SMH about this task."""
        return self.state in states.POLLED

    @property
    def error(self) -> str | None:
        """Return what SMH said went wrong, from its result entries, or None if it said nothing."""
        errors = [r["err"] for r in self.results or () if isinstance(r, dict) and r.get("err")]
        return "; ".join(dict.fromkeys(errors)) or None

    @property
    def can_recheck(self) -> bool:
        """Tell whether a person may ask for another check (SMH did not know it, or oddly)."""
        return self.state in states.RECHECKABLE
