"""The SMH client: the one module that talks to Tencent Cloud Smart Media Hosting over HTTP.

Every call has a deadline, tokens are minted and renewed as needed, and what is safe to retry
is retried. The client counts nothing itself: whoever builds it passes `on_call` and `on_token`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable

import requests
import urllib3

from smh_dashboard.smh import answers, codes
from smh_dashboard.smh.answers import HistorySettings, SMHError, TaskStatus
from smh_dashboard.smh.codes import MISSING
from smh_dashboard.smh.redact import guard_library_logs, redact

log = logging.getLogger("smh")

# Tried again after a short back-off, unless SMH names a wait (Retry-After): a request never
# sleeps on that, it is the poller's time for the next try. A 429 is never tried again at once.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
# A token is used only if redaction can hide it whole: printable ASCII without a space, a quote
# or an ampersand (the characters that end a token in redact's patterns).
USABLE_TOKEN = re.compile(r"[!#-%(-~]{1,4096}")
# Told of each HTTP call (SMH endpoint, outcome) and of each token obtained ("new", "renewed").
OnCall = Callable[[str, str], None]
OnToken = Callable[[str], None]


def _ignore(*_: str) -> None:
    """Take a callback's arguments and do nothing with them."""


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
        max_ids_per_call: int = codes.MAX_IDS_PER_CALL,
        max_split_calls: int | None = None,
        max_answer_bytes: int = 1024 * 1024,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_call: OnCall = _ignore,
        on_token: OnToken = _ignore,
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
        self._on_call = on_call
        self._on_token = on_token
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
                found |= answers.statuses_in(self._ask_tasks(batch), batch)
            except SMHError as error:
                if not answers.refuses_some_id(error):
                    raise
                found |= self._isolate_refusal(batch, error, error, budget)
        return [found.get(i) or TaskStatus(task_id=i, state=MISSING) for i in ids]

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
            return {ids[0]: TaskStatus(ids[0], MISSING, refusal=str(refusal))}
        found: dict[int, TaskStatus] = {}
        refused = []
        middle = len(ids) // 2
        for half in (ids[:middle], ids[middle:]):
            if not budget.spend():
                raise first
            try:
                found |= answers.statuses_in(self._ask_tasks(half), half)
            except SMHError as error:
                if not answers.refuses_some_id(error):
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
        task_id = answers.task_id_in(answer)
        if task_id is None:
            raise SMHError("SMH accepted the clear but sent no task id", code=codes.BAD_ANSWER)
        return task_id

    def get_history_settings(self) -> HistorySettings:
        """Read the library's file-history settings."""
        path = f"/api/v1/directory-history/{self.library_id}/library-history"
        answer = self._call("GET", path)
        if not isinstance(answer, dict) or not isinstance(answer.get("enableFileHistory"), bool):
            raise SMHError("SMH's history settings lack enableFileHistory", code=codes.BAD_ANSWER)
        return HistorySettings(
            enabled=answer["enableFileHistory"],
            count=answers.int_or_none(answer.get("fileHistoryCount")),
            expire_days=answers.int_or_none(answer.get("fileHistoryExpireDay")),
            merge_interval=answers.int_or_none(answer.get("mergeInterval")),
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
            if error.code != codes.INVALID_ACCESS_TOKEN:
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
        self._on_token("new")
        log.info("minted an SMH access token for library %s", self.library_id)

    def _renew_locked(self) -> None:
        path = f"/api/v1/token/{self.library_id}/{urllib.parse.quote(self._token or '', safe='')}"
        try:
            self._accept_token(self._request("POST", path, {}, retry=False))
            self._on_token("renewed")
            log.info("renewed the SMH access token for library %s", self.library_id)
        except SMHError as error:
            log.info(
                "renewing the SMH token for library %s failed (%s); minting", self.library_id, error
            )
            self._mint_locked()

    def _accept_token(self, answer: object) -> None:
        token = answer.get("accessToken") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(token, str) or not token:
            raise SMHError("SMH's token answer has no accessToken", code=codes.BAD_ANSWER)
        if not USABLE_TOKEN.fullmatch(token):
            raise SMHError(
                "SMH's token answer has an accessToken that is too long or holds spaces, quotes "
                "or control characters",
                code=codes.BAD_ANSWER,
            )
        expires_in = answers.int_or_none(answer.get("expiresIn"))
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
                    error.status in RETRYABLE_STATUS
                    or error.code in (codes.TIMEOUT, codes.UNREACHABLE)
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
            outcome, status, request_id = error.outcome, error.status, error.request_id
            raise
        else:
            outcome = "ok"
            return answer
        finally:
            milliseconds = (time.monotonic() - started) * 1000
            self._on_call(endpoint, outcome)
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
                f"SMH did not answer {call} within {self.timeout[1]:g}s", code=codes.TIMEOUT
            ) from None
        except Exception as error:
            # requests wraps most failures in RequestException, but not all that an odd answer
            # can cause in urllib3, http.client or cookie parsing: whatever the transport
            # raises, SMH could not be asked this time.
            raise SMHError(
                f"SMH could not be reached for {call}: {type(error).__name__}",
                code=codes.UNREACHABLE,
            ) from None
        with response:
            body = self._read_capped(response, deadline, call)
        status = response.status_code
        log.debug("SMH %s -> %s (%d bytes)", call, status, len(body))
        if not 200 <= status < 300:
            # The renewal carries the token in its path, not its parameters.
            sent = (params.get("access_token"), params.get("library_secret"), self._token)
            credentials = [str(c) for c in (*sent, self._secret) if c]
            raise answers.refusal(
                status, body, response.headers.get("Retry-After"), call, credentials
            )
        if not body.strip():
            return status, None
        try:
            return status, answers.decode_json(body)
        except answers.Unreadable as reason:
            raise SMHError(
                f"SMH answered {call} with {reason}", status=status, code=codes.BAD_ANSWER
            ) from None

    def _read_capped(self, response: requests.Response, deadline: float, call: str) -> bytes:
        declared = answers.int_or_none(response.headers.get("Content-Length"))
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
                code=codes.TIMEOUT,
            )
        if failure is not None and _timed_out(failure):
            raise SMHError(f"SMH stopped answering {call} midway", code=codes.TIMEOUT)
        if failure is not None:
            raise SMHError(
                f"SMH's answer to {call} broke off: {type(failure).__name__}",
                code=codes.UNREACHABLE,
            )
        if size > self.max_answer_bytes:
            raise self._too_large(response)
        return b"".join(chunks)

    def _too_large(self, response: requests.Response) -> SMHError:
        return SMHError(
            f"SMH's answer is larger than {self.max_answer_bytes} bytes",
            status=response.status_code,
            code=codes.ANSWER_TOO_LARGE,
        )
