"""SMH's own numbers and names: task status codes, error codes, and the limits it documents."""

from __future__ import annotations

# What the `status` inside each item of SMH's task answer says (not the HTTP status).
TASK_RUNNING = 202
TASK_DONE = 200
TASK_DONE_EMPTY = 204
TASK_FAILED = 500

# The states SMH's answers tell; the dashboard adds its own two (see domain/states.py).
RUNNING, DONE, DONE_EMPTY, FAILED, UNKNOWN, MISSING = (
    "running",
    "done",
    "done_empty",
    "failed",
    "unknown",
    "missing",
)
STATE_BY_CODE = {
    TASK_RUNNING: RUNNING,
    TASK_DONE: DONE,
    TASK_DONE_EMPTY: DONE_EMPTY,
    TASK_FAILED: FAILED,
}
# SMH will not change its answer for a task in one of these.
FINISHED = (DONE, DONE_EMPTY, FAILED)


def state_for_code(code: int) -> str:
    """Return the state an SMH status code stands for (UNKNOWN for one SMH does not document)."""
    return STATE_BY_CODE.get(code, UNKNOWN)


# Task ids and SMH's other numbers are 64-bit integers.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# SMH answers TooManyItems past this many ids in one task query.
MAX_IDS_PER_CALL = 100

# SMH's error codes that the client acts on.
INVALID_ACCESS_TOKEN = "InvalidAccessToken"
# A clear refused while file history is on (also while a switch-off has not taken effect yet).
FILE_HISTORY_ENABLED = "FileHistoryEnabled"
# SMH's answers that concern the whole library (or our credentials), not one task id: splitting a
# batch to find the refused id would only repeat the same refusal.
LIBRARY_LEVEL_CODES = frozenset(
    {
        INVALID_ACCESS_TOKEN,
        "EmptyAccessToken",
        "NoPermission",
        "AccessTokenNotMatchLibrary",
        "LibraryServiceExpired",
        "LibraryNotFound",
        "RouteNotFound",
        "WrongLibraryIdOrSecret",
    }
)

# The client's own codes, for failures SMH never got to name.
TIMEOUT = "Timeout"
UNREACHABLE = "Unreachable"
BAD_ANSWER = "BadAnswer"
ANSWER_TOO_LARGE = "AnswerTooLarge"
