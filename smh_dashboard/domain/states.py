"""Task states: what SMH reports and what the dashboard adds, and their groups."""

from __future__ import annotations

from smh_dashboard.smh.codes import (
    DONE,
    DONE_EMPTY,
    FAILED,
    MISSING,
    RUNNING,
    UNKNOWN,
)

# SMH's own states, what its status codes stand for and which states it never changes (FINISHED)
# come with its answers (smh/answers.py); the dashboard adds these two.
# Tracked, but not answered for yet: the dashboard's own state, never SMH's.
PENDING = "pending"
# Tracked, and SMH has answered without it, still within the grace period (a mistyped id, or one
# SMH does not list yet): still asked about, but not counted as running. Also the dashboard's own.
NOT_FOUND = "not_found"

# The dashboard keeps asking SMH about these. A status code SMH does not document (UNKNOWN) is
# shown and not asked about again: a person can ask for another check (RECHECKABLE).
POLLED = (PENDING, RUNNING, NOT_FOUND)
RECHECKABLE = (MISSING, UNKNOWN)
# A task's end is told (webhook) only when it ends from one of these: the dashboard had seen it
# not ended. One first learnt already ended (an old id pasted in) was not seen ending: no news;
# nor is an id SMH never knew going missing (lifecycle.tells_end).
TOLD_WHEN_ENDED = (RUNNING, NOT_FOUND)
# Counted as running in titles, counts and status lines: SMH has not said it does not know them.
UNDER_WAY = (PENDING, RUNNING)
# Ended well, and ended otherwise: what a page's title marks with ✓ or ✕ once nothing is polled.
ENDED_WELL = (DONE, DONE_EMPTY)
# Every state a task can be in, each once.
ALL = (PENDING, NOT_FOUND, RUNNING, DONE, DONE_EMPTY, FAILED, UNKNOWN, MISSING)
