"""How SMH's answer moves a tracked task: pure rules over the row as stored, no Flask, no SQL.

A task's record is read as a mapping of its stored fields (`state`, `missing_since`,
`first_running_at`, `finished_at`, `last_answer`, …); `observe` returns the fields an answer
changes, ready to be written back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smh_dashboard.domain import states
from smh_dashboard.smh.answers import TaskStatus

# What pages show of a task. SMH's answer is shown whole on the task page, and its status, count
# and results are read from it, so comparing it (not each of them) finds every change. The check
# time is left out: it moves at every refresh, and pages show it at a coarser step.
SHOWN = ("state", "first_running_at", "finished_at", "last_answer")


def observe(
    before: Mapping[Any, Any], status: TaskStatus, now: float, grace_seconds: float
) -> dict[str, Any]:
    """Return the fields that SMH's answer `status` changes in a polled task's record."""
    if status.state == states.MISSING:
        # A task tracked moments ago may not be listed yet, and SMH may skip one in a single
        # answer; only after the grace period is it forgotten (SMH keeps 30 days) or never
        # existed, and its last known state stays as it was.
        missing_since = before["missing_since"] or now
        if now - missing_since >= grace_seconds:
            state = states.MISSING
        elif before["state"] == states.PENDING:
            # Never listed yet, and now SMH has answered without it: no longer counted running.
            state = states.NOT_FOUND
        else:
            state = before["state"]
        return {
            "state": state,
            "missing_since": missing_since,
            "checked_at": now,
        }
    first_running_at, finished_at = before["first_running_at"], before["finished_at"]
    if status.state == states.RUNNING and first_running_at is None:
        first_running_at = now
    if status.is_terminal and finished_at is None:
        finished_at = now
    return {
        "state": status.state,
        "smh_status": status.code,
        "delete_count": status.delete_count,
        "results": [
            {"err": r.err, "status": r.status, "deleteCount": r.delete_count}
            for r in status.results
        ]
        or None,
        "last_answer": status.raw,
        "missing_since": None,
        "first_running_at": first_running_at,
        "finished_at": finished_at,
        "checked_at": now,
    }


def shows_change(before: Mapping[Any, Any], change: Mapping[str, Any]) -> bool:
    """Tell whether `change` alters anything pages show of the task recorded as `before`."""
    return any(name in change and change[name] != before[name] for name in SHOWN)


def ends(change: Mapping[str, Any]) -> bool:
    """Tell whether `change` ends the task: the dashboard stops asking SMH about it."""
    return change["state"] not in states.POLLED


def tells_end(before: Mapping[Any, Any], change: Mapping[str, Any]) -> bool:
    """Tell whether `change` ends a task seen not ended before, so that its end is news to tell.

    An id SMH never knew that goes missing (one older than SMH's 30 days pasted in, or a typo)
    is no news; a task seen running that SMH then forgot is.
    """
    if not ends(change) or before["state"] not in states.TOLD_WHEN_ENDED:
        return False
    seen_running = before["state"] == states.RUNNING or before["first_running_at"] is not None
    return change["state"] != states.MISSING or seen_running
