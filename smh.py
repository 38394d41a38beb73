"""The SMH client: the one module that talks to Tencent Cloud Smart Media Hosting over HTTP."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import requests

import states

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
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
SECRET_PARAMS = re.compile(r"((?:access_token|library_secret)=)[^&\s'\"]*", re.IGNORECASE)
TOKEN_IN_PATH = re.compile(r"(/api/v1/token/[^/\s]+/)[^/?\s'\"]+")


def redact(text: str) -> str:
    """Return text with every access token and library secret replaced by ***."""
    return TOKEN_IN_PATH.sub(r"\1***", SECRET_PARAMS.sub(r"\1***", text))


class RedactingFilter(logging.Filter):
    """Scrub credentials from records that libraries (urllib3) log with full URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without credentials; never drop it."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_redacting_filter = RedactingFilter()


def guard_library_logs() -> None:
    """Make sure urllib3's debug lines, which carry full URLs, never show a token."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
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
    """What SMH said about one task, or that it said nothing (state states.MISSING)."""

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
    """Turn one item of SMH's task answer into a TaskStatus, or raise SMHError if malformed."""
    if not isinstance(item, dict):
        raise SMHError("SMH sent a task item that is not an object", code="BadAnswer")
    task_id, code = _int_or_none(item.get("taskId")), _int_or_none(item.get("status"))
    if task_id is None or task_id < 1:
        raise SMHError("SMH sent a task item without a valid taskId", code="BadAnswer")
    if code is None:
        raise SMHError(f"SMH sent task {task_id} without a numeric status", code="BadAnswer")
    entries = []
    for entry in item.get("result") or ():
        if not isinstance(entry, dict):
            raise SMHError(f"SMH sent task {task_id} with a malformed result", code="BadAnswer")
        entries.append(
            ResultEntry(
                err=str(entry.get("err") or ""),
                status=_int_or_none(entry.get("status")),
                delete_count=_int_or_none(entry.get("deleteCount")),
            )
        )
    counts = [e.delete_count for e in entries if e.delete_count is not None]
    return TaskStatus(
        task_id=task_id,
        state=states.state_for_code(code),
        code=code,
        results=tuple(entries),
        delete_count=sum(counts) if counts else None,
        raw=item,
    )


def _int_or_none(value: object) -> int | None:
    """Return value as a 64-bit integer (SMH sends some numbers as strings), else None."""
    if isinstance(value, str) and 0 < len(value) <= 20 and value.lstrip("-").isdigit():
        value = int(value) if value.isascii() else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def _refuses_some_id(error: SMHError) -> bool:
    """Tell whether a failed task query may be SMH refusing one of its ids, not the whole call."""
    return (
        error.status in (400, 403, 404)
        and error.code is not None
        and error.code not in LIBRARY_LEVEL_CODES
    )


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
        max_retry_after: float = 30.0,
        max_ids_per_call: int = MAX_IDS_PER_CALL,
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
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.max_ids_per_call = max_ids_per_call
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
        for start in range(0, len(ids), self.max_ids_per_call):
            found.update(self._query_batch(ids[start : start + self.max_ids_per_call]))
        return [found.get(i) or TaskStatus(task_id=i, state=states.MISSING) for i in ids]

    def _query_batch(self, ids: list[int]) -> dict[int, TaskStatus]:
        path = f"/api/v1/task/{self.library_id}/{','.join(map(str, ids))}"
        params = {"user_id": self.user_id} if self.user_id else {}
        try:
            answer = self._call("GET", path, params=params)
        except SMHError as error:
            if not _refuses_some_id(error):
                raise
            if len(ids) == 1:
                refused = TaskStatus(task_id=ids[0], state=states.MISSING, refusal=str(error))
                return {ids[0]: refused}
            # SMH refused the whole batch over some id (it may answer 400/403/404 for an id it
            # no longer keeps); halve until the refused ids stand alone, so that the other tasks'
            # states still come through.
            middle = len(ids) // 2
            return self._query_batch(ids[:middle]) | self._query_batch(ids[middle:])
        if not isinstance(answer, list):
            raise SMHError("SMH's task answer is not a JSON array", code="BadAnswer")
        statuses = (parse_task_item(item) for item in answer)
        wanted = set(ids)
        return {s.task_id: s for s in statuses if s.task_id in wanted}

    def clear_history(self) -> int:
        """Start clearing every historical version of the library; return SMH's task id."""
        path = f"/api/v1/directory-history/{self.library_id}/library-history"
        answer = self._call("DELETE", path, retry=False)
        task_id = answer.get("taskId") if isinstance(answer, dict) else None
        if isinstance(task_id, str) and task_id.isdigit():
            task_id = int(task_id)
        if not isinstance(task_id, int) or isinstance(task_id, bool):
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
        log.info("minted an SMH access token for library %s", self.library_id)

    def _renew_locked(self) -> None:
        path = f"/api/v1/token/{self.library_id}/{self._token}"
        try:
            self._accept_token(self._request("POST", path, {}, retry=False))
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
        expires_in = _int_or_none(answer.get("expiresIn")) or self.token_period
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
                retryable = error.status in RETRYABLE_STATUS or error.code in (
                    "Timeout",
                    "Unreachable",
                )
                if not retry or not retryable or attempt >= self.retries:
                    raise
                delay = self.backoff * 2**attempt
                if error.retry_after is not None:
                    if error.retry_after > self.max_retry_after:
                        raise
                    delay = max(delay, error.retry_after)
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
        url = self.base_url + path
        shown = redact(f"{path}?{'&'.join(f'{k}={v}' for k, v in params.items())}")
        try:
            response = self._session.request(
                method, url, params=params, json=json_body, timeout=self.timeout, stream=True
            )
        except requests.Timeout:
            raise SMHError(
                f"SMH did not answer {method} {shown} within {self.timeout[1]:g}s",
                code="Timeout",
            ) from None
        except requests.RequestException as error:
            raise SMHError(
                f"SMH could not be reached for {method} {shown}: {type(error).__name__}",
                code="Unreachable",
            ) from None
        with response:
            try:
                body = self._read_capped(response)
            except requests.Timeout:
                raise SMHError(
                    f"SMH stopped answering {method} {shown} midway", code="Timeout"
                ) from None
            except requests.RequestException as error:
                raise SMHError(
                    f"SMH's answer to {method} {shown} broke off: {type(error).__name__}",
                    code="Unreachable",
                ) from None
        log.debug("SMH %s %s -> %s (%d bytes)", method, shown, response.status_code, len(body))
        if response.status_code >= 400:
            credentials = [
                str(params[k]) for k in ("access_token", "library_secret") if params.get(k)
            ]
            raise self._error_from(response, body, method, shown, credentials)
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise SMHError(
                f"SMH answered {method} {shown} with something that is not JSON",
                status=response.status_code,
                code="BadAnswer",
            ) from None

    def _read_capped(self, response: requests.Response) -> bytes:
        declared = _int_or_none(response.headers.get("Content-Length"))
        if declared is not None and declared > self.max_answer_bytes:
            raise self._too_large(response)
        # The read timeout bounds each gap between bytes; this bounds an answer that trickles.
        deadline = time.monotonic() + 2 * self.timeout[1]
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise self._too_large(response)
            if time.monotonic() > deadline:
                raise requests.Timeout()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, response: requests.Response) -> SMHError:
        return SMHError(
            f"SMH's answer is larger than {self.max_answer_bytes} bytes",
            status=response.status_code,
            code="AnswerTooLarge",
        )

    @staticmethod
    def _error_from(
        response: requests.Response, body: bytes, method: str, shown: str, credentials: list[str]
    ) -> SMHError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        retry_after = response.headers.get("Retry-After")
        try:
            retry_after_seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            retry_after_seconds = None
        code = data.get("code") if isinstance(data.get("code"), str) else None
        message = data.get("message") if isinstance(data.get("message"), str) else None
        request_id = data.get("requestId") if isinstance(data.get("requestId"), str) else None
        # SMH's message is shown on pages and by the proxy: never let it echo a credential.
        for credential in credentials:
            message = message.replace(credential, "***") if message else message
        return SMHError(
            message or f"SMH answered {method} {shown} with HTTP {response.status_code}",
            status=response.status_code,
            code=code or None,
            request_id=request_id,
            retry_after=retry_after_seconds,
        )
