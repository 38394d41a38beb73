"""What SMH answers, read and checked: task states, history settings, or the error it refused with.

Every answer is parsed into small frozen dataclasses, never handed on as `requests` objects;
whatever SMH sends that no SMH answer is becomes an SMHError that carries no credential.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

from smh_dashboard.smh import codes
from smh_dashboard.smh.redact import redact

# SMH's answers nest four levels deep. The depth is checked before decoding, so that no answer
# can make the decoder recurse without bound.
MAX_JSON_DEPTH = 64
# SMH's numbers are 64-bit integers (20 characters at most); a longer literal is not SMH's.
MAX_NUMBER_LENGTH = 40
# What of SMH's error text is kept: enough to explain, not enough to fill a page.
MAX_ERROR_TEXT = 500
INT64_TEXT = re.compile(r"-?[0-9]{1,20}")
RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
# A JSON string, closed or not (an unclosed one runs to the end), matched without backtracking.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*"?', re.DOTALL)
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
OPENING_BRACKETS = frozenset(b"[{")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# Compared by identity, as exceptions are; the repr below leaves retry_after out.
@dataclass(eq=False)
class SMHError(Exception):
    """A failed SMH call: HTTP status, SMH code, message and request id, never a credential."""

    message: str
    _: KW_ONLY
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        self.message = redact(self.message)
        super().__init__(self.message)

    @property
    def is_timeout(self) -> bool:
        """Tell whether SMH did not answer in time."""
        return self.code == codes.TIMEOUT

    @property
    def outcome(self) -> str:
        """Name how the call failed, in a few words a dashboard can group by."""
        if self.code in (codes.TIMEOUT, codes.UNREACHABLE):
            return self.code.lower()
        if self.code in (codes.BAD_ANSWER, codes.ANSWER_TOO_LARGE) or self.status is None:
            return "bad_answer"
        return f"http_{self.status // 100}xx"

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " · ".join(parts)

    def __repr__(self) -> str:
        return (
            f"SMHError({self.message!r}, status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r})"
        )


@dataclass(frozen=True)
class ResultEntry:
    """One entry of a finished task's result list."""

    err: str
    status: int | None
    delete_count: int | None


@dataclass(frozen=True)
class TaskStatus:
    """What SMH said about one task, or that it said nothing usable (state codes.MISSING).

    A codes.MISSING status has a `refusal` when SMH refused the id alone or sent an unreadable item
    for it, and none when SMH simply left the task out.
    """

    task_id: int
    state: str
    code: int | None = None
    results: tuple[ResultEntry, ...] = ()
    delete_count: int | None = None
    raw: dict | None = field(default=None, compare=False)
    refusal: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Tell whether SMH will not change its answer for this task any more."""
        return self.state in codes.FINISHED


@dataclass(frozen=True)
class HistorySettings:
    """A library's file-history settings."""

    enabled: bool
    count: int | None = None
    expire_days: int | None = None
    merge_interval: int | None = None


def parse_task_item(item: object) -> TaskStatus:
    """Turn one item of SMH's task answer into a TaskStatus, or raise SMHError if malformed.

    An item is malformed unless its taskId is a positive 64-bit integer, its status a 64-bit
    integer (either may come as a decimal string) and its result a list of objects or empty
    (absent, null, or any other empty value, as answers stored before this rule may hold).
    Inside result entries a field of the wrong type or out of range is left out (err "", status
    and deleteCount None): they describe a task, they do not decide its state.
    """
    if not isinstance(item, dict):
        raise SMHError("SMH sent a task item that is not an object", code=codes.BAD_ANSWER)
    task_id, code = task_id_in(item), int_or_none(item.get("status"))
    if task_id is None:
        raise SMHError("SMH sent a task item without a valid taskId", code=codes.BAD_ANSWER)
    if code is None:
        raise SMHError(f"SMH sent task {task_id} without a numeric status", code=codes.BAD_ANSWER)
    result = item.get("result") or []
    if not isinstance(result, list) or not all(isinstance(e, dict) for e in result):
        raise SMHError(f"SMH sent task {task_id} with a malformed result", code=codes.BAD_ANSWER)
    entries = tuple(
        ResultEntry(
            err=entry["err"] if isinstance(entry.get("err"), str) else "",
            status=int_or_none(entry.get("status")),
            delete_count=int_or_none(entry.get("deleteCount")),
        )
        for entry in result
    )
    counts = [e.delete_count for e in entries if e.delete_count is not None]
    return TaskStatus(
        task_id=task_id,
        state=codes.state_for_code(code),
        code=code,
        results=entries,
        delete_count=sum(counts) if counts else None,
        raw=item,
    )


def task_id_in(item: object) -> int | None:
    """Return the task an item of SMH's answer is about, if it names one."""
    task_id = int_or_none(item.get("taskId")) if isinstance(item, dict) else None
    return task_id if task_id is not None and task_id >= 1 else None


def statuses_in(answer: object, ids: list[int]) -> dict[int, TaskStatus]:
    """Return what SMH's task answer says about these ids; an unreadable item costs its own task.

    Such a task is reported codes.MISSING with the reason as its refusal, so that it keeps its last
    known state. An item that names no task could be about any of them: the answer as a whole
    is then unreadable.
    """
    if not isinstance(answer, list):
        raise SMHError("SMH's task answer is not a JSON array", code=codes.BAD_ANSWER)
    wanted = set(ids)
    found: dict[int, TaskStatus] = {}
    for item in answer:
        try:
            status = parse_task_item(item)
        except SMHError as error:
            task_id = task_id_in(item)
            if task_id is None:
                raise
            if task_id in wanted:
                unreadable = TaskStatus(task_id, codes.MISSING, refusal=error.message)
                found.setdefault(task_id, unreadable)
            continue
        if status.task_id in wanted:
            found[status.task_id] = status
    return found


def int_or_none(value: object) -> int | None:
    """Return value as a 64-bit integer (SMH sends some numbers as strings), else None."""
    if isinstance(value, str):
        value = int(value) if INT64_TEXT.fullmatch(value) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if codes.INT64_MIN <= value <= codes.INT64_MAX else None


class Unreadable(ValueError):
    """What makes an answer's bytes something the client will not read as SMH's JSON."""


def decode_json(body: bytes) -> object:
    """Decode an answer's JSON, or raise Unreadable for what no SMH answer is.

    That is: bytes that are not UTF-8 (a byte order mark included), nesting past
    MAX_JSON_DEPTH, NaN or infinite numbers, number literals past MAX_NUMBER_LENGTH, and text
    with a lone surrogate (which could not be written out again).
    """
    if _nests_deeper_than(body, MAX_JSON_DEPTH):
        raise Unreadable(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("bytes that are not UTF-8") from None
    try:
        value = JSON_DECODER.decode(text)
    except Unreadable:
        raise
    except ValueError:
        raise Unreadable("something that is not JSON") from None
    if SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise Unreadable("text holding a lone surrogate") from None
    return value


def _nests_deeper_than(body: bytes, limit: int) -> bool:
    """Tell whether the body's brackets, outside strings, nest deeper than `limit`."""
    brackets = JSON_STRING.sub(b"", body).translate(None, NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in OPENING_BRACKETS else -1
        if depth > limit:
            return True
    return False


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_LENGTH:
        raise Unreadable(f"a number of {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_LENGTH else math.inf
    if not math.isfinite(value):
        raise Unreadable("a number out of range")
    return value


def _refuse_constant(name: str) -> object:
    raise Unreadable(f"{name}, which JSON does not allow")


JSON_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)


def _retry_after_seconds(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (a number or an HTTP date), or None."""
    value = (value or "").strip()
    if RETRY_AFTER_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def refuses_some_id(error: SMHError) -> bool:
    """Tell whether a failed task query may be SMH refusing one of its ids, not the whole call."""
    return (
        error.status in (400, 403, 404)
        and error.code is not None
        and error.code not in codes.LIBRARY_LEVEL_CODES
    )


def _scrub_credentials(value: object, credentials: list[str]) -> str | None:
    """Return SMH's text with every credential replaced by ***, or None if it sent no text."""
    if not isinstance(value, str) or not value:
        return None
    # Longest first, so that a credential holding another is replaced whole; cut only after,
    # so that no credential is cut in two and half shown.
    for credential in sorted(credentials, key=len, reverse=True):
        value = value.replace(credential, "***")
    return value[:MAX_ERROR_TEXT]


def refusal(
    status: int, body: bytes, retry_after: str | None, call: str, credentials: list[str]
) -> SMHError:
    """Return the SMHError for an answer with a failing HTTP status, echoing no credential."""
    try:
        data = decode_json(body)
    except Unreadable:
        data = None
    if not isinstance(data, dict):
        data = {}
    # What SMH says is shown on pages and by the proxy: never let it echo a credential.
    code, message, request_id = (
        _scrub_credentials(data.get(key), credentials) for key in ("code", "message", "requestId")
    )
    return SMHError(
        message or f"SMH answered {call} with HTTP {status}",
        status=status,
        code=code,
        request_id=request_id,
        retry_after=_retry_after_seconds(retry_after),
    )
