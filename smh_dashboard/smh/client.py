"""The SMH client: the one module that talks to Tencent Cloud Smart Media Hosting over HTTP."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
import urllib3

from smh_dashboard import metrics
from smh_dashboard.domain import states

log = logging.getLogger(__name__)

# SMH answers TooManyItems past this many ids in one task query.
MAX_IDS_PER_CALL = 100

# SMH's answers that concern the whole library (or our credentials), not one task id: splitting a
# batch to find the refused id would only repeat the same refusal.
LIBRARY_LEVEL_CODES = frozenset(
    {
        "InvalidAccessToken",
        "EmptyAccessToken",
        "NoPermission",
        "AccessTokenNotMatchLibrary",
        "LibraryServiceExpired",
        "LibraryNotFound",
        "RouteNotFound",
        "WrongLibraryIdOrSecret",
    }
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# SMH's answers nest four levels deep. The depth is checked before decoding, so that no answer
# can make the decoder recurse without bound.
MAX_JSON_DEPTH = 64
# SMH's numbers are 64-bit integers (20 characters at most); a longer literal is not SMH's.
MAX_NUMBER_LENGTH = 40
# What of SMH's error text is kept: enough to explain, not enough to fill a page.
MAX_ERROR_TEXT = 500
# Tried again after a short back-off, unless SMH names a wait (Retry-After): a request never
# sleeps on that, it is the poller's time for the next try. A 429 is never tried again at once.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
INT64_TEXT = re.compile(r"-?[0-9]{1,20}")
RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
# A JSON string, closed or not (an unclosed one runs to the end), matched without backtracking.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*"?', re.DOTALL)
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
OPENING_BRACKETS = frozenset(b"[{")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A token is used only if redaction can hide it whole: printable ASCII without a space, a quote
# or an ampersand (the characters that end a token in redact's patterns).
USABLE_TOKEN = re.compile(r"[!#-%(-~]{1,4096}")
SECRET_PARAMS = re.compile(r"((?:access_token|library_secret)=)[^&\s'\"]*", re.IGNORECASE)
TOKEN_IN_PATH = re.compile(r"(/api/v1/token/[^/\s]+/)[^/?\s'\"]+")


def redact(text: str) -> str:
    """Return text with every access token and library secret replaced by ***."""
    return TOKEN_IN_PATH.sub(r"\1***", SECRET_PARAMS.sub(r"\1***", text))


class RedactingFilter(logging.Filter):
    """Scrub credentials from records that libraries (urllib3) log with full URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and traceback without credentials; never drop it."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters use a record's exc_text when it is set.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_redacting_filter = RedactingFilter()


def guard_library_logs() -> None:
    """Make sure urllib3's log lines, which carry full URLs, never show a token."""
    # A logger's filters do not apply to its children's records, hence each module by name.
    names = ("connectionpool", "connection", "response", "poolmanager", "util.retry")
    for name in (*(f"urllib3.{n}" for n in names), "requests"):
        logger = logging.getLogger(name)
        if _redacting_filter not in logger.filters:
            logger.addFilter(_redacting_filter)


class SMHError(Exception):
    """A failed SMH call: HTTP status, SMH code, message and request id, never a credential."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def is_timeout(self) -> bool:
        """Tell whether SMH did not answer in time."""
        return self.code == "Timeout"

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
    """What SMH said about one task, or that it said nothing usable (state states.MISSING).

    A MISSING status has a `refusal` when SMH refused the id alone or sent an unreadable item
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
        return self.state in states.FINISHED


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
        raise SMHError("SMH sent a task item that is not an object", code="BadAnswer")
    task_id, code = _task_id_in(item), _int_or_none(item.get("status"))
    if task_id is None:
        raise SMHError("SMH sent a task item without a valid taskId", code="BadAnswer")
    if code is None:
        raise SMHError(f"SMH sent task {task_id} without a numeric status", code="BadAnswer")
    result = item.get("result") or []
    if not isinstance(result, list) or not all(isinstance(e, dict) for e in result):
        raise SMHError(f"SMH sent task {task_id} with a malformed result", code="BadAnswer")
    entries = tuple(
        ResultEntry(
            err=entry["err"] if isinstance(entry.get("err"), str) else "",
            status=_int_or_none(entry.get("status")),
            delete_count=_int_or_none(entry.get("deleteCount")),
        )
        for entry in result
    )
    counts = [e.delete_count for e in entries if e.delete_count is not None]
    return TaskStatus(
        task_id=task_id,
        state=states.state_for_code(code),
        code=code,
        results=entries,
        delete_count=sum(counts) if counts else None,
        raw=item,
    )


def _task_id_in(item: object) -> int | None:
    """Return the task an item of SMH's answer is about, if it names one."""
    task_id = _int_or_none(item.get("taskId")) if isinstance(item, dict) else None
    return task_id if task_id is not None and task_id >= 1 else None


def _statuses_in(answer: object, ids: list[int]) -> dict[int, TaskStatus]:
    """Return what SMH's task answer says about these ids; an unreadable item costs its own task.

    Such a task is reported MISSING with the reason as its refusal, so that it keeps its last
    known state. An item that names no task could be about any of them: the answer as a whole
    is then unreadable.
    """
    if not isinstance(answer, list):
        raise SMHError("SMH's task answer is not a JSON array", code="BadAnswer")
    wanted = set(ids)
    found: dict[int, TaskStatus] = {}
    for item in answer:
        try:
            status = parse_task_item(item)
        except SMHError as error:
            task_id = _task_id_in(item)
            if task_id is None:
                raise
            if task_id in wanted:
                unreadable = TaskStatus(task_id, states.MISSING, refusal=error.message)
                found.setdefault(task_id, unreadable)
            continue
        if status.task_id in wanted:
            found[status.task_id] = status
    return found


def _int_or_none(value: object) -> int | None:
    """Return value as a 64-bit integer (SMH sends some numbers as strings), else None."""
    if isinstance(value, str):
        value = int(value) if INT64_TEXT.fullmatch(value) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


class _Unreadable(ValueError):
    """What makes an answer's bytes something the client will not read as SMH's JSON."""


def _decode_json(body: bytes) -> object:
    """Decode an answer's JSON, or raise _Unreadable for what no SMH answer is.

    That is: bytes that are not UTF-8 (a byte order mark included), nesting past
    MAX_JSON_DEPTH, NaN or infinite numbers, number literals past MAX_NUMBER_LENGTH, and text
    with a lone surrogate (which could not be written out again).
    """
    if _nests_deeper_than(body, MAX_JSON_DEPTH):
        raise _Unreadable(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("bytes that are not UTF-8") from None
    try:
        value = JSON_DECODER.decode(text)
    except _Unreadable:
        raise
    except ValueError:
        raise _Unreadable("something that is not JSON") from None
    if SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise _Unreadable("text holding a lone surrogate") from None
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
        raise _Unreadable(f"a number of {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_LENGTH else math.inf
    if not math.isfinite(value):
        raise _Unreadable("a number out of range")
    return value


def _refuse_constant(name: str) -> object:
    raise _Unreadable(f"{name}, which JSON does not allow")


JSON_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)


def _retry_after(value: str | None) -> float | None:
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


def _refuses_some_id(error: SMHError) -> bool:
    """Tell whether a failed task query may be SMH refusing one of its ids, not the whole call."""
    return (
        error.status in (400, 403, 404)
        and error.code is not None
        and error.code not in LIBRARY_LEVEL_CODES
    )


def _scrub(value: object, credentials: list[str]) -> str | None:
    """Return SMH's text with every credential replaced by ***, or None if it sent no text."""
    if not isinstance(value, str) or not value:
        return None
    # Longest first, so that a credential holding another is replaced whole; cut only after,
    # so that no credential is cut in two and half shown.
    for credential in sorted(credentials, key=len, reverse=True):
        value = value.replace(credential, "***")
    return value[:MAX_ERROR_TEXT]


def _cut(response: requests.Response, cut: threading.Event) -> None:
    """Stop any read of this response, now and later (run by the deadline's timer thread)."""
    cut.set()
    try:
        response.raw.shutdown()
    except Exception:
        # Not a socket (another transport), or released already: closing ends the read too.
        # Nothing may escape a timer thread.
        with contextlib.suppress(Exception):
            response.close()


def _timed_out(error: Exception) -> bool:
    """Tell whether a failed read was the read timeout (requests reports it as a broken read)."""
    return isinstance(error, requests.Timeout) or any(
        isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in error.args
    )


class _CallBudget:
    """How many more calls one task query may make."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def spend(self) -> bool:
        """Take one call from the budget; tell whether there was one left."""
        if self.calls < 1:
            return False
        self.calls -= 1
        return True


def _endpoint(method: str, path: str) -> str:
    """Name the SMH endpoint a call goes to, as the simulator does; never its URL."""
    if path == "/api/v1/token":
        return "token.create"
    if path.startswith("/api/v1/token/"):
        return "token.renew" if method == "POST" else "token.delete"
    if path.startswith("/api/v1/task/"):
        return "task.query"
    if path.endswith("/library-history"):
        return {"GET": "history.get", "POST": "history.set"}.get(method, "history.clear")
    return "other"


def _outcome(error: SMHError) -> str:
    """Name how a failed call failed, in a few words a dashboard can group by."""
    if error.code in ("Timeout", "Unreachable"):
        return error.code.lower()
    if error.code in ("BadAnswer", "AnswerTooLarge") or error.status is None:
        return "bad_answer"
    return f"http_{error.status // 100}xx"


def default_base_url(library_id: str) -> str:
    """Return SMH's per-library API host."""
    return f"https://{library_id}.api.tencentsmh.cn"


class SMHClient:
    """Speak SMH for one media library, minting and renewing its admin token as needed."""

    def __init__(
        self,
        library_id: str,
        *,
        secret: str | None = None,
        token: str | None = None,
        user_id: str | None = None,
        base_url: str | None = None,
        token_period: int = 86400,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_ids_per_call: int = MAX_IDS_PER_CALL,
        max_split_calls: int | None = None,
        max_answer_bytes: int = 1024 * 1024,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secret and not token:
            raise ValueError("an SMH client needs a library secret or an access token")
        self.library_id = library_id
        self.base_url = (base_url or default_base_url(library_id)).rstrip("/")
        self.user_id = user_id
        self.token_period = token_period
        self.timeout = (connect_timeout, read_timeout)
        # The whole answer, however slowly it comes, must be in by then.
        self.answer_seconds = connect_timeout + 2 * read_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_ids_per_call = max_ids_per_call
        # Extra calls one query may make to find an id SMH refuses: by default enough to halve
        # a full batch down to one id, two calls a halving.
        if max_split_calls is None:
            max_split_calls = 2 * math.ceil(math.log2(max_ids_per_call))
        self.max_split_calls = max_split_calls
        self.max_answer_bytes = max_answer_bytes
        self._secret = secret
        self._token = token
        self._token_expires_at: float | None = None
        self._token_lifetime: float | None = None
        self._token_lock = threading.Lock()
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        guard_library_logs()

    def __repr__(self) -> str:
        auth = "secret" if self._secret else "fixed token"
        return f"SMHClient({self.library_id!r}, base_url={self.base_url!r}, auth={auth})"

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def query_tasks(self, task_ids: Iterable[int]) -> list[TaskStatus]:
        """Ask SMH for tasks' states: one status per distinct id, in the order given."""
        ids = list(dict.fromkeys(int(i) for i in task_ids))
        found: dict[int, TaskStatus] = {}
        budget = _CallBudget(self.max_split_calls)
        for start in range(0, len(ids), self.max_ids_per_call):
            batch = ids[start : start + self.max_ids_per_call]
            try:
                found |= _statuses_in(self._ask_tasks(batch), batch)
            except SMHError as error:
                if not _refuses_some_id(error):
                    raise
                found |= self._isolate_refusal(batch, error, error, budget)
        return [found.get(i) or TaskStatus(task_id=i, state=states.MISSING) for i in ids]

    def _ask_tasks(self, ids: list[int]) -> object:
        path = f"/api/v1/task/{self.library_id}/{','.join(map(str, ids))}"
        return self._call("GET", path, params={"user_id": self.user_id} if self.user_id else {})

    def _isolate_refusal(
        self, ids: list[int], refusal: SMHError, first: SMHError, budget: _CallBudget
    ) -> dict[int, TaskStatus]:
        """Halve a refused batch until the one id SMH refuses stands alone; return the states.

        SMH may refuse a whole batch (400/403/404) over one id it no longer keeps: halving
        finds it and still brings the other tasks' states. When both halves are refused too, or
        the call budget runs out first, SMH is refusing everything (or several ids): the first
        refusal is raised, so that it is one outage and no task is reported missing over it.
        """
        if len(ids) == 1:
            return {ids[0]: TaskStatus(ids[0], states.MISSING, refusal=str(refusal))}
        found: dict[int, TaskStatus] = {}
        refused = []
        middle = len(ids) // 2
        for half in (ids[:middle], ids[middle:]):
            if not budget.spend():
                raise first
            try:
                found |= _statuses_in(self._ask_tasks(half), half)
            except SMHError as error:
                if not _refuses_some_id(error):
                    raise
                refused.append((half, error))
        if len(refused) == 2:
            raise first
        for half, half_refusal in refused:
            found |= self._isolate_refusal(half, half_refusal, first, budget)
        return found

    def clear_history(self) -> int:
        """Start clearing every historical version of the library; return SMH's task id."""
        path = f"/api/v1/directory-history/{self.library_id}/library-history"
        answer = self._call("DELETE", path, retry=False)
        task_id = _task_id_in(answer)
        if task_id is None:
            raise SMHError("SMH accepted the clear but sent no task id", code="BadAnswer")
        return task_id

    def get_history_settings(self) -> HistorySettings:
        """Read the library's file-history settings."""
        path = f"/api/v1/directory-history/{self.library_id}/library-history"
        answer = self._call("GET", path)
        if not isinstance(answer, dict) or not isinstance(answer.get("enableFileHistory"), bool):
            raise SMHError("SMH's history settings lack enableFileHistory", code="BadAnswer")
        return HistorySettings(
            enabled=answer["enableFileHistory"],
            count=_int_or_none(answer.get("fileHistoryCount")),
            expire_days=_int_or_none(answer.get("fileHistoryExpireDay")),
            merge_interval=_int_or_none(answer.get("mergeInterval")),
        )

    def set_history_settings(self, settings: HistorySettings) -> None:
        """Write the library's file-history settings (all four, as SMH takes them)."""
        path = f"/api/v1/directory-history/{self.library_id}/library-history"
        body: dict[str, object] = {"enableFileHistory": settings.enabled}
        for name, value in (
            ("fileHistoryCount", settings.count),
            ("fileHistoryExpireDay", settings.expire_days),
            ("mergeInterval", settings.merge_interval),
        ):
            if value is not None:
                body[name] = value
        self._call("POST", path, retry=False, body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        retry: bool = True,
        body: dict | None = None,
    ) -> object:
        """Make an authenticated call, minting a fresh token once if SMH rejects ours."""
        token = self._current_token()
        try:
            return self._request(
                method, path, {**(params or {}), "access_token": token}, retry, body
            )
        except SMHError as error:
            if error.code != "InvalidAccessToken":
                raise
            if not self._secret:
                raise SMHError(
                    f"SMH rejected the configured access token for library {self.library_id}; "
                    "configure a new one (SMH_ACCESS_TOKEN or the library's token)",
                    status=error.status,
                    code=error.code,
                    request_id=error.request_id,
                ) from None
            token = self._replace_token(stale=token)
            return self._request(
                method, path, {**(params or {}), "access_token": token}, retry, body
            )

    def _current_token(self) -> str:
        with self._token_lock:
            if self._secret is None:
                return self._token  # type: ignore[return-value]
            if self._token is None:
                self._mint_locked()
            elif self._token_expiring():
                self._renew_locked()
            return self._token  # type: ignore[return-value]

    def _replace_token(self, stale: str) -> str:
        with self._token_lock:
            # Another thread may have replaced the same stale token while this one waited.
            if self._token == stale:
                self._mint_locked()
            return self._token  # type: ignore[return-value]

    def _token_expiring(self) -> bool:
        if self._token_expires_at is None:
            return False
        lifetime = self._token_lifetime or self.token_period
        margin = min(300.0, lifetime / 10)
        return self._clock() >= self._token_expires_at - margin

    def _mint_locked(self) -> None:
        params = {
            "library_id": self.library_id,
            "library_secret": self._secret,
            "grant": "admin",
            "period": self.token_period,
        }
        if self.user_id:
            params["user_id"] = self.user_id
        self._accept_token(self._request("GET", "/api/v1/token", params, retry=True))
        metrics.count_token_mint("new")
        log.info("minted an SMH access token for library %s", self.library_id)

    def _renew_locked(self) -> None:
        path = f"/api/v1/token/{self.library_id}/{urllib.parse.quote(self._token or '', safe='')}"
        try:
            self._accept_token(self._request("POST", path, {}, retry=False))
            metrics.count_token_mint("renewed")
            log.info("renewed the SMH access token for library %s", self.library_id)
        except SMHError as error:
            log.info(
                "renewing the SMH token for library %s failed (%s); minting", self.library_id, error
            )
            self._mint_locked()

    def _accept_token(self, answer: object) -> None:
        token = answer.get("accessToken") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(token, str) or not token:
            raise SMHError("SMH's token answer has no accessToken", code="BadAnswer")
        if not USABLE_TOKEN.fullmatch(token):
            raise SMHError(
                "SMH's token answer has an accessToken that is too long or holds spaces, quotes "
                "or control characters",
                code="BadAnswer",
            )
        expires_in = _int_or_none(answer.get("expiresIn"))
        if expires_in is None or expires_in < 1:
            # SMH grants the period asked for; a lifetime that means nothing is taken to be it.
            expires_in = self.token_period
        self._token = token
        self._token_lifetime = float(expires_in)
        self._token_expires_at = self._clock() + expires_in

    def _request(
        self, method: str, path: str, params: dict, retry: bool, body: dict | None = None
    ) -> object:
        """Send one request, retrying what is safe to retry, and return the decoded JSON."""
        attempt = 0
        while True:
            try:
                return self._send(method, path, params, body)
            except SMHError as error:
                retryable = error.retry_after is None and (
                    error.status in RETRYABLE_STATUS or error.code in ("Timeout", "Unreachable")
                )
                if not retry or not retryable or attempt >= self.retries:
                    raise
                delay = self.backoff * 2**attempt
                attempt += 1
                log.warning(
                    "SMH %s %s failed (%s); retry %d of %d in %.1fs",
                    method,
                    redact(path),
                    error,
                    attempt,
                    self.retries,
                    delay,
                )
                self._sleep(delay)

    def _send(self, method: str, path: str, params: dict, json_body: dict | None = None) -> object:
        """Make one HTTP call; count it and log one line about it, without its URL."""
        endpoint = _endpoint(method, path)
        started = time.monotonic()
        outcome, status, request_id = "error", None, None
        try:
            status, answer = self._exchange(method, path, params, json_body)
        except SMHError as error:
            outcome, status, request_id = _outcome(error), error.status, error.request_id
            raise
        else:
            outcome = "ok"
            return answer
        finally:
            milliseconds = (time.monotonic() - started) * 1000
            metrics.count_smh_call(endpoint, outcome)
            log.info(
                "SMH %s for library %s: %s, HTTP %s, request id %s, %.0f ms",
                endpoint,
                self.library_id,
                outcome,
                status if status is not None else "-",
                request_id or "-",
                milliseconds,
                extra={
                    "fields": {
                        "smh_endpoint": endpoint,
                        "library": self.library_id,
                        "outcome": outcome,
                        "status": status,
                        "smh_request_id": request_id,
                        "duration_ms": round(milliseconds, 1),
                    }
                },
            )

    def _exchange(
        self, method: str, path: str, params: dict, json_body: dict | None = None
    ) -> tuple[int, object]:
        url = self.base_url + path
        call = redact(f"{method} {path}?{'&'.join(f'{k}={v}' for k, v in params.items())}")
        deadline = time.monotonic() + self.answer_seconds
        try:
            # SMH does not redirect; following one would read an answer past this client's caps.
            response = self._session.request(
                method,
                url,
                params=params,
                json=json_body,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise SMHError(
                f"SMH did not answer {call} within {self.timeout[1]:g}s", code="Timeout"
            ) from None
        except Exception as error:
            # requests wraps most failures in RequestException, but not all that an odd answer
            # can cause in urllib3, http.client or cookie parsing: whatever the transport
            # raises, SMH could not be asked this time.
            raise SMHError(
                f"SMH could not be reached for {call}: {type(error).__name__}", code="Unreachable"
            ) from None
        with response:
            body = self._read_capped(response, deadline, call)
        status = response.status_code
        log.debug("SMH %s -> %s (%d bytes)", call, status, len(body))
        if not 200 <= status < 300:
            # The renewal carries the token in its path, not its parameters.
            sent = (params.get("access_token"), params.get("library_secret"), self._token)
            credentials = [str(c) for c in (*sent, self._secret) if c]
            raise self._error_from(response, body, call, credentials)
        if not body.strip():
            return status, None
        try:
            return status, _decode_json(body)
        except _Unreadable as reason:
            raise SMHError(
                f"SMH answered {call} with {reason}", status=status, code="BadAnswer"
            ) from None

    def _read_capped(self, response: requests.Response, deadline: float, call: str) -> bytes:
        declared = _int_or_none(response.headers.get("Content-Length"))
        if declared is not None and declared > self.max_answer_bytes:
            raise self._too_large(response)
        # The read timeout bounds each gap between bytes, so an answer sent a byte at a time
        # never trips it, and a blocked read cannot look at a clock: at the deadline a timer
        # shuts the socket's reading side, which ends the blocked read at once.
        cut = threading.Event()
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (response, cut))
        timer.daemon = True
        timer.start()
        chunks, size = [], 0
        failure: Exception | None = None
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_answer_bytes:
                    break
                chunks.append(chunk)
        except Exception as error:
            # As when sending: not every failure to read comes wrapped by requests.
            failure = error
        finally:
            timer.cancel()
        if cut.is_set():
            raise SMHError(
                f"SMH did not finish answering {call} within {self.answer_seconds:g}s",
                code="Timeout",
            )
        if failure is not None and _timed_out(failure):
            raise SMHError(f"SMH stopped answering {call} midway", code="Timeout")
        if failure is not None:
            raise SMHError(
                f"SMH's answer to {call} broke off: {type(failure).__name__}", code="Unreachable"
            )
        if size > self.max_answer_bytes:
            raise self._too_large(response)
        return b"".join(chunks)

    def _too_large(self, response: requests.Response) -> SMHError:
        return SMHError(
            f"SMH's answer is larger than {self.max_answer_bytes} bytes",
            status=response.status_code,
            code="AnswerTooLarge",
        )

    @staticmethod
    def _error_from(
        response: requests.Response, body: bytes, call: str, credentials: list[str]
    ) -> SMHError:
        try:
            data = _decode_json(body)
        except _Unreadable:
            data = None
        if not isinstance(data, dict):
            data = {}
        # What SMH says is shown on pages and by the proxy: never let it echo a credential.
        code, message, request_id = (
            _scrub(data.get(key), credentials) for key in ("code", "message", "requestId")
        )
        return SMHError(
            message or f"SMH answered {call} with HTTP {response.status_code}",
            status=response.status_code,
            code=code,
            request_id=request_id,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
