"""Task states: what SMH reports and what the dashboard adds, and their groups."""

from __future__ import annotations

RUNNING, DONE, DONE_EMPTY, FAILED, UNKNOWN, MISSING = (
    "running",
    "done",
    "done_empty",
    "failed",
    "unknown",
    "missing",
)
# Tracked, but not answered for yet: the dashboard's own state, never SMH's.
PENDING = "pending"
# Tracked, and SMH has answered without it, still within the grace period (a mistyped id, or one
# SMH does not list yet): still asked about, but not counted as running. Also the dashboard's own.
NOT_FOUND = "not_found"

# SMH tells a task's state by the `status` inside each item of its answer, not the HTTP status.
STATE_BY_CODE = {202: RUNNING, 200: DONE, 204: DONE_EMPTY, 500: FAILED}

# The dashboard keeps asking SMH about these. A status code SMH does not document (UNKNOWN) is
# shown and not asked about again: a person can ask for another check (RECHECKABLE).
POLLED = (PENDING, RUNNING, NOT_FOUND)
FINISHED = (DONE, DONE_EMPTY, FAILED)
RECHECKABLE = (MISSING, UNKNOWN)
# Counted as running in titles, counts and status lines: SMH has not said it does not know them.
UNDER_WAY = (PENDING, RUNNING)
# Ended well, and ended otherwise: what a page's title marks with ✓ or ✕ once nothing is polled.
ENDED_WELL = (DONE, DONE_EMPTY)
# Every state a task can be in, each once.
ALL = (PENDING, NOT_FOUND, RUNNING, DONE, DONE_EMPTY, FAILED, UNKNOWN, MISSING)


def state_for_code(code: int) -> str:
    """Return the state an SMH status code stands for (UNKNOWN for one SMH does not document)."""
    return STATE_BY_CODE.get(code, UNKNOWN)
