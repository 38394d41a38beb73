"""SMH's own numbers and names: task status codes, error codes, and the limits it documents."""

from __future__ import annotations

# What the `status` inside each item of SMH's task answer says (not the HTTP status).
TASK_RUNNING = 202
TASK_DONE = 200
TASK_DONE_EMPTY = 204
TASK_FAILED = 500

# Task ids and SMH's other numbers are 64-bit integers.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# SMH answers TooManyItems past this many ids in one task query.
MAX_IDS_PER_CALL = 100

# SMH's error codes that the client acts on.
INVALID_ACCESS_TOKEN = "InvalidAccessToken"
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
