"""A local stand-in for Tencent Cloud SMH's token, task and history APIs, as a WSGI app."""

import argparse
import collections
import functools
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

DEFAULT_PERIOD = 86400
MIN_PERIOD = 1200
MAX_TASK_IDS = 100
TASK_MEMORY = 30 * 86400.0
CLEAR_INTERVAL = 60.0
FIRST_TASK_ID = 1000
OUTCOMES = ("done", "empty", "failed")
UNKNOWN_ID_MODES = ("omit", "400", "404")
FAULT_KINDS = ("error", "latency", "garbage", "truncated", "oversize", "trickle", "answer")
HISTORY_DEFAULTS = {
    "enableFileHistory": True,
    "fileHistoryCount": 10,
    "fileHistoryExpireDay": 30,
    "mergeInterval": 600,
}
TASK_ID_LIST = re.compile(r"[0-9]+(,[0-9]+)*")

_HISTORY_PATH = "/api/v1/directory-history/<library_id>/library-history"
_URLS = Map(
    [
        Rule("/api/v1/token", endpoint="token.create", methods=["GET"]),
        Rule("/api/v1/token/<library_id>/<token>", endpoint="token.renew", methods=["POST"]),
        Rule("/api/v1/token/<library_id>/<token>", endpoint="token.delete", methods=["DELETE"]),
        Rule("/api/v1/task/<library_id>/<task_ids>", endpoint="task.query", methods=["GET"]),
        Rule(_HISTORY_PATH, endpoint="history.get", methods=["GET"]),
        Rule(_HISTORY_PATH, endpoint="history.set", methods=["POST"]),
        Rule(_HISTORY_PATH, endpoint="history.clear", methods=["DELETE"]),
        Rule("/_sim/calls", endpoint="sim.calls", methods=["GET"]),
        Rule("/_sim/reset-calls", endpoint="sim.reset_calls", methods=["POST"]),
        Rule("/_sim/tasks", endpoint="sim.tasks", methods=["POST"]),
        Rule("/_sim/faults", endpoint="sim.inject", methods=["POST"]),
        Rule("/_sim/faults", endpoint="sim.clear_faults", methods=["DELETE"]),
        Rule("/_sim/advance", endpoint="sim.advance", methods=["POST"]),
    ],
    # Merging would answer "//" paths with a redirect; SMH has no such thing.
    merge_slashes=False,
)
ENDPOINTS = tuple(
    rule.endpoint for rule in _URLS.iter_rules() if not rule.endpoint.startswith("sim.")
)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        with self._lock:
            self._now += seconds


class RunningServer:
    """A simulator served over real HTTP from a daemon thread."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self._server = server
        self.port: int = server.port
        host = f"[{server.host}]" if ":" in server.host else server.host
        self.base_url = f"http://{host}:{self.port}"
        # A short poll interval makes shutdown quick, which keeps each test's teardown short.
        serve = functools.partial(server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving, close the socket and wait for the thread."""
        # serve_forever closes the listening socket itself once it returns.
        self._server.shutdown()
        self._thread.join()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


class _QuietHandler(WSGIRequestHandler):
    """Request handler that keeps access logs out of the output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing, because SMH URLs carry access tokens and benchmarks make many calls."""


class _Reject(Exception):
    """An SMH error answer raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@dataclass(frozen=True)
class TokenGrant:
    """What a token was minted for: its library, admin rights, user and lifetime in seconds."""

    library_id: str
    admin: bool
    user_id: str | None
    lifetime: float


@dataclass
class _Token:
    library_id: str
    admin: bool
    user_id: str | None
    lifetime: float
    expires_at: float


@dataclass
class _Task:
    task_id: int
    library_id: str
    created_at: float
    run_seconds: float
    outcome: str | int
    delete_count: int

    def forgotten(self, now: float) -> bool:
        """Tell whether SMH no longer answers for this task, 30 days after it ended."""
        return now - (self.created_at + self.run_seconds) > TASK_MEMORY

    def item(self, now: float) -> dict:
        """Render the task as one item of a task query's answer."""
        if now - self.created_at < self.run_seconds:
            return {"taskId": self.task_id, "status": 202}
        if self.outcome == "done":
            result = {"err": "", "status": 0, "deleteCount": self.delete_count}
            return {"taskId": self.task_id, "status": 200, "result": [result]}
        if self.outcome == "empty":
            return {"taskId": self.task_id, "status": 204}
        if self.outcome == "failed":
            err = "InternalError: history store unavailable"
            result = {"err": err, "status": -1, "deleteCount": 0}
            return {"taskId": self.task_id, "status": 500, "result": [result]}
        return {"taskId": self.task_id, "status": self.outcome}


@dataclass
class _Library:
    secret: str
    history: dict
    last_clear: float | None = None
    # When a switch-off asked for takes effect; until then history stays on.
    off_at: float | None = None

    def settle(self, now: float) -> None:
        """Apply a switch-off whose delay has passed."""
        if self.off_at is not None and now >= self.off_at:
            self.history["enableFileHistory"] = False
            self.off_at = None


@dataclass
class _Fault:
    kind: str
    endpoint: str | None
    times: int | None
    status: int
    code: str
    retry_after: float | None
    seconds: float
    message: str
    body: bytes


class Simulator:
    """A thread-safe in-memory SMH serving the calls the dashboard makes."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        token_lifetime: float | None = None,
        unknown_ids: str = "omit",
        clear_run_seconds: float = 30.0,
        history_off_delay: float = 0.0,
    ) -> None:
        if unknown_ids not in UNKNOWN_ID_MODES:
            raise ValueError(f"unknown_ids must be one of {UNKNOWN_ID_MODES}")
        self._clock = clock
        self._token_lifetime = token_lifetime
        self._unknown_ids = unknown_ids
        self._clear_run_seconds = clear_run_seconds
        self._history_off_delay = history_off_delay
        self._lock = threading.Lock()
        self._libraries: dict[str, _Library] = {}
        self._tokens: dict[str, _Token] = {}
        self._issued: list[tuple[str, str]] = []
        self._tasks: dict[int, _Task] = {}
        self._forgotten: set[int] = set()
        self._next_task_id = FIRST_TASK_ID
        self._faults: list[_Fault] = []
        self.calls: collections.Counter = collections.Counter()
        self.task_queries: list[list[int]] = []
        self._handlers: dict[str, Callable[..., Response]] = {
            "token.create": self._create_token,
            "token.renew": self._renew_token,
            "token.delete": self._delete_token,
            "task.query": self._query_tasks,
            "history.get": self._get_history,
            "history.set": self._set_history,
            "history.clear": self._clear_history,
            "sim.calls": self._sim_calls,
            "sim.reset_calls": self._sim_reset_calls,
            "sim.tasks": self._sim_tasks,
            "sim.inject": self._sim_inject,
            "sim.clear_faults": self._sim_clear_faults,
            "sim.advance": self._sim_advance,
        }

    def add_library(self, library_id: str, secret: str, *, history_enabled: bool = False) -> None:
        """Create or replace a media library that tokens can be minted for."""
        history = HISTORY_DEFAULTS | {"enableFileHistory": history_enabled}
        with self._lock:
            self._libraries[library_id] = _Library(secret, history)

    def delay_history_off(self, seconds: float) -> None:
        """Apply each switch-off of file history only `seconds` after it is asked for, as SMH
        may; until then the settings still say it is on and a clear is refused."""
        if not _is_number(seconds) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        with self._lock:
            self._history_off_delay = seconds

    def add_task(
        self,
        library_id: str,
        *,
        run_seconds: float = 30.0,
        outcome: str | int = "done",
        delete_count: int = 3,
        task_id: int | None = None,
        created_at: float | None = None,
    ) -> int:
        """Create a library task that runs for `run_seconds` and then ends with `outcome`."""
        with self._lock:
            return self._add_task(
                library_id, run_seconds, outcome, delete_count, task_id, created_at
            )

    def forget_task(self, task_id: int) -> None:
        """Make SMH answer as if it had lost the task, as past its memory, until `remember_task`."""
        with self._lock:
            if task_id not in self._tasks:
                raise ValueError(f"no task {task_id!r}")
            self._forgotten.add(task_id)

    def remember_task(self, task_id: int) -> None:
        """Make SMH answer for a forgotten task again, as it would have all along."""
        with self._lock:
            self._forgotten.discard(task_id)

    def add_tasks(self, library_id: str, count: int, **kwargs: Any) -> list[int]:
        """Create `count` tasks alike and return their ids."""
        if "task_id" in kwargs:
            raise ValueError("add_tasks numbers tasks itself; use add_task for a chosen id")
        return [self.add_task(library_id, **kwargs) for _ in range(count)]

    def issue_token(
        self,
        library_id: str,
        *,
        period: float = DEFAULT_PERIOD,
        grant: str = "admin",
        user_id: str | None = None,
    ) -> str:
        """Mint a token without an HTTP call; any grant other than "admin" is read-only."""
        with self._lock:
            if library_id not in self._libraries:
                raise ValueError(f"no library {library_id!r}")
            return self._mint(library_id, period, grant == "admin", user_id)

    def issued_tokens(self, library_id: str) -> list[str]:
        """Return every token ever minted for a library, oldest first, revoked or not."""
        with self._lock:
            return [token for library, token in self._issued if library == library_id]

    def describe_token(self, token: str) -> TokenGrant:
        """Return what a current token was minted for; raise ValueError for an unknown one."""
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                raise ValueError("no such current token")
            return TokenGrant(record.library_id, record.admin, record.user_id, record.lifetime)

    def revoke_token(self, token: str) -> None:
        """Make `token` unknown from now on."""
        with self._lock:
            self._tokens.pop(token, None)

    def expire_tokens(self) -> None:
        """Make every current token expired now."""
        with self._lock:
            now = self._clock()
            for record in self._tokens.values():
                record.expires_at = min(record.expires_at, now)

    def inject(
        self,
        kind: str,
        *,
        endpoint: str | None = None,
        times: int | None = 1,
        status: int = 500,
        code: str = "InternalServerError",
        retry_after: float | None = None,
        seconds: float = 0.0,
        message: str = "Injected fault.",
        body: bytes | str = b"",
    ) -> None:
        """Make the next `times` calls to `endpoint` (None: any) misbehave as `kind` says.

        "error" answers `status` with SMH's error body (`code`, `message`, `retry_after`);
        "latency" waits `seconds` before answering; "garbage", "truncated" and "oversize" answer
        200 with HTML, half a task list or a list past 2 MiB; "trickle" sends the real answer one
        byte every `seconds`; "answer" sends `status` with exactly `body` (and `retry_after`).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be None or one of {ENDPOINTS}")
        if times is not None and (not _is_int(times) or times < 1):
            raise ValueError("times must be a positive int, or None for until cleared")
        if not _is_int(status) or not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        if not isinstance(code, str):
            raise ValueError("code must be a string")
        if not isinstance(message, str):
            raise ValueError("message must be a string")
        if retry_after is not None and not _is_number(retry_after):
            raise ValueError("retry_after must be a number of seconds")
        if not _is_number(seconds) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        if not isinstance(body, bytes | str):
            raise ValueError("body must be bytes or a string")
        if isinstance(body, str):
            body = body.encode()
        fault = _Fault(kind, endpoint, times, status, code, retry_after, seconds, message, body)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def reset_calls(self) -> None:
        """Forget the calls counted so far."""
        with self._lock:
            self.calls.clear()
            self.task_queries.clear()

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        """Serve the simulator over HTTP from a daemon thread; port 0 picks a free one."""
        server = make_server(host, port, self, threaded=True, request_handler=_QuietHandler)
        return RunningServer(server)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Answer one WSGI request."""
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
        except MethodNotAllowed as exc:
            allow = {"Allow": ", ".join(exc.valid_methods or [])}
            return _error(405, "MethodNotAllowed", "The method is not allowed here.", allow)
        except HTTPException:
            return _error(404, "RouteNotFound", "No such route.")
        handler = self._handlers[endpoint]
        if endpoint.startswith("sim."):
            # Control handlers go through the public methods, which take the lock themselves.
            return handler(request)
        with self._lock:
            self.calls[endpoint] += 1
            if endpoint == "task.query" and (ids := _parse_task_ids(args["task_ids"])):
                self.task_queries.append(ids)
            fault = self._take_fault(endpoint)
        if fault is not None and fault.kind == "latency":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind != "trickle":
            return _fault_response(fault)
        with self._lock:
            try:
                response = handler(request, self._clock(), **args)
            except _Reject as exc:
                response = _error(exc.status, exc.code, exc.message, exc.headers)
        if fault is not None:
            return _trickled(response, fault.seconds)
        return response

    def _take_fault(self, endpoint: str) -> _Fault | None:
        for fault in self._faults:
            if fault.endpoint in (None, endpoint):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _add_task(
        self,
        library_id: str,
        run_seconds: float,
        outcome: str | int,
        delete_count: int,
        task_id: int | None,
        created_at: float | None,
    ) -> int:
        if library_id not in self._libraries:
            raise ValueError(f"no library {library_id!r}")
        if outcome not in OUTCOMES and not _is_int(outcome):
            raise ValueError(f"outcome must be one of {OUTCOMES} or an int status")
        if not _is_number(run_seconds) or run_seconds < 0:
            raise ValueError("run_seconds must be a non-negative number")
        if not _is_int(delete_count) or delete_count < 0:
            raise ValueError("delete_count must be a non-negative int")
        if task_id is None:
            task_id = self._next_free_id()
        elif not _is_int(task_id) or task_id < 1 or task_id in self._tasks:
            raise ValueError(f"task_id {task_id!r} is taken or not a positive int")
        start = self._clock() if created_at is None else created_at
        self._tasks[task_id] = _Task(task_id, library_id, start, run_seconds, outcome, delete_count)
        return task_id

    def _mint(self, library_id: str, period: float, admin: bool, user_id: str | None) -> str:
        token = secrets.token_urlsafe(32)
        lifetime = period if self._token_lifetime is None else self._token_lifetime
        expires_at = self._clock() + lifetime
        self._tokens[token] = _Token(library_id, admin, user_id, lifetime, expires_at)
        self._issued.append((library_id, token))
        return token

    def _authenticate(self, library_id: str, token: str, now: float) -> _Token:
        if library_id not in self._libraries:
            raise _Reject(404, "LibraryNotFound", "The media library does not exist.")
        if not token:
            raise _Reject(400, "EmptyAccessToken", "An access token is required.")
        record = self._tokens.get(token)
        if record is None or record.expires_at <= now:
            raise _Reject(403, "InvalidAccessToken", "The access token is invalid or expired.")
        if record.library_id != library_id:
            raise _Reject(
                403, "AccessTokenNotMatchLibrary", "The access token is for another library."
            )
        # SMH's validity slides: every call made with a token extends it.
        record.expires_at = now + record.lifetime
        return record

    def _authenticate_admin(self, request: Request, library_id: str, now: float) -> _Token:
        record = self._authenticate(library_id, request.args.get("access_token", ""), now)
        if not record.admin:
            raise _Reject(403, "NoPermission", "This call needs an admin token.")
        return record

    def _create_token(self, request: Request, now: float) -> Response:
        period = request.args.get("period", str(DEFAULT_PERIOD))
        if not period.isascii() or not period.isdigit() or int(period) < MIN_PERIOD:
            raise _Reject(400, "ParamInvalid", f"period must be an integer >= {MIN_PERIOD}.")
        grant = request.args.get("grant", "")
        if grant not in ("", "admin"):
            raise _Reject(400, "ParamInvalid", "grant must be admin or absent.")
        library_id = request.args.get("library_id", "")
        library = self._libraries.get(library_id)
        if library is None or library.secret != request.args.get("library_secret"):
            raise _Reject(404, "WrongLibraryIdOrSecret", "Wrong library id or secret.")
        user_id = request.args.get("user_id") or None
        token = self._mint(library_id, int(period), grant == "admin", user_id)
        return _json({"accessToken": token, "expiresIn": _seconds(self._tokens[token].lifetime)})

    def _renew_token(self, request: Request, now: float, library_id: str, token: str) -> Response:
        record = self._authenticate(library_id, token, now)
        return _json({"accessToken": token, "expiresIn": _seconds(record.lifetime)})

    def _delete_token(self, request: Request, now: float, library_id: str, token: str) -> Response:
        self._authenticate(library_id, token, now)
        del self._tokens[token]
        return Response(status=204)

    def _query_tasks(
        self, request: Request, now: float, library_id: str, task_ids: str
    ) -> Response:
        self._authenticate(library_id, request.args.get("access_token", ""), now)
        ids = _parse_task_ids(task_ids)
        if ids is None:
            raise _Reject(400, "ParamInvalid", "TaskIdList must be comma-separated positive ints.")
        if len(ids) > MAX_TASK_IDS:
            raise _Reject(400, "TooManyItems", f"At most {MAX_TASK_IDS} task ids per call.")
        items = []
        for task_id in dict.fromkeys(ids):
            task = None if task_id in self._forgotten else self._tasks.get(task_id)
            if task is None or task.library_id != library_id or task.forgotten(now):
                if self._unknown_ids == "400":
                    raise _Reject(400, "ParamInvalid", f"Task {task_id} is unknown or expired.")
                if self._unknown_ids == "404":
                    raise _Reject(404, "TaskNotFound", f"Task {task_id} is unknown or expired.")
                continue
            items.append(task.item(now))
        return _json(items)

    def _get_history(self, request: Request, now: float, library_id: str) -> Response:
        self._authenticate(library_id, request.args.get("access_token", ""), now)
        library = self._libraries[library_id]
        library.settle(now)
        history = library.history
        if not history["enableFileHistory"]:
            return _json({"enableFileHistory": False})
        return _json(history)

    def _set_history(self, request: Request, now: float, library_id: str) -> Response:
        self._authenticate_admin(request, library_id, now)
        body = _read_json(request)
        valid = (
            isinstance(body, dict)
            and isinstance(body.get("enableFileHistory"), bool)
            and set(body) <= set(HISTORY_DEFAULTS)
            and all(_is_int(v) and v >= 0 for k, v in body.items() if k != "enableFileHistory")
        )
        if not valid:
            raise _Reject(400, "ParamInvalid", "The history settings are malformed.")
        library = self._libraries[library_id]
        library.settle(now)
        switching_off = library.history["enableFileHistory"] and not body["enableFileHistory"]
        if switching_off and self._history_off_delay > 0:
            library.history.update(body | {"enableFileHistory": True})
            library.off_at = now + self._history_off_delay
        else:
            library.history.update(body)
            library.off_at = None
        return Response(status=204)

    def _clear_history(self, request: Request, now: float, library_id: str) -> Response:
        self._authenticate_admin(request, library_id, now)
        library = self._libraries[library_id]
        library.settle(now)
        # SMH only says history must be off first; this code and status are a guess.
        if library.history["enableFileHistory"]:
            raise _Reject(400, "FileHistoryEnabled", "Switch file history off before clearing.")
        if library.last_clear is not None and now - library.last_clear < CLEAR_INTERVAL:
            wait = math.ceil(CLEAR_INTERVAL - (now - library.last_clear))
            raise _Reject(
                429,
                "RateLimitExceeded",
                "History can be cleared once a minute.",
                {"Retry-After": str(wait)},
            )
        library.last_clear = now
        task_id = self._next_free_id()
        self._add_task(
            library_id, self._clear_run_seconds, "done", 100 + task_id % 900, task_id, now
        )
        return _json({"taskId": task_id}, status=202)

    def _next_free_id(self) -> int:
        while self._next_task_id in self._tasks:
            self._next_task_id += 1
        return self._next_task_id

    def _sim_calls(self, request: Request) -> Response:
        with self._lock:
            return _json({"calls": dict(self.calls), "taskQueries": len(self.task_queries)})

    def _sim_reset_calls(self, request: Request) -> Response:
        self.reset_calls()
        return Response(status=204)

    def _sim_tasks(self, request: Request) -> Response:
        names = {"runSeconds": "run_seconds", "outcome": "outcome", "deleteCount": "delete_count"}
        body = _read_json(request)
        if not isinstance(body, dict) or not set(body) <= {"libraryId", "count", *names}:
            return _error(400, "ParamInvalid", "Expected libraryId, count and task settings.")
        count = body.get("count", 1)
        if not _is_int(count) or count < 1:
            return _error(400, "ParamInvalid", "count must be a positive int.")
        library_id = body.get("libraryId")
        if not isinstance(library_id, str):
            return _error(400, "ParamInvalid", "libraryId must be a string.")
        kwargs = {names[key]: value for key, value in body.items() if key in names}
        try:
            task_ids = self.add_tasks(library_id, count, **kwargs)
        except ValueError as exc:
            return _error(400, "ParamInvalid", str(exc))
        return _json({"taskIds": task_ids})

    def _sim_inject(self, request: Request) -> Response:
        fields = {"kind", "endpoint", "times", "status", "code", "retryAfter", "seconds"}
        fields |= {"message", "body"}
        body = _read_json(request)
        if not isinstance(body, dict) or "kind" not in body or not set(body) <= fields:
            return _error(400, "ParamInvalid", f"Expected a fault made of {sorted(fields)}.")
        kwargs = {key.replace("retryAfter", "retry_after"): value for key, value in body.items()}
        try:
            self.inject(kwargs.pop("kind"), **kwargs)
        except ValueError as exc:
            return _error(400, "ParamInvalid", str(exc))
        return Response(status=204)

    def _sim_clear_faults(self, request: Request) -> Response:
        self.clear_faults()
        return Response(status=204)

    def _sim_advance(self, request: Request) -> Response:
        if not isinstance(self._clock, FakeClock):
            return _error(409, "ClockNotAdjustable", "This simulator runs on the real clock.")
        body = _read_json(request)
        if not isinstance(body, dict) or not _is_number(body.get("seconds")):
            return _error(400, "ParamInvalid", 'Expected {"seconds": <number>}.')
        self._clock.advance(body["seconds"])
        return Response(status=204)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: float) -> float:
    """Return whole seconds as an int, as SMH does, and anything finer untouched."""
    return int(value) if float(value).is_integer() else value


def _parse_task_ids(text: str) -> list[int] | None:
    if not TASK_ID_LIST.fullmatch(text):
        return None
    ids = [int(part) for part in text.split(",")]
    return ids if all(ids) else None


def _read_json(request: Request) -> Any:
    # Parse whatever the content type says: a client that forgets the header should still work.
    try:
        return json.loads(request.get_data())
    except ValueError:
        return None


def _json(data: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status, headers, mimetype="application/json")


def _error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    body = {"code": code, "message": message, "requestId": secrets.token_hex(16)}
    return _json(body, status, headers)


def _fault_response(fault: _Fault) -> Response:
    headers = None
    if fault.retry_after is not None:
        # `:g` keeps whole seconds whole and lets tests ask for sub-second waits.
        headers = {"Retry-After": f"{fault.retry_after:g}"}
    if fault.kind == "error":
        return _error(fault.status, fault.code, fault.message, headers)
    if fault.kind == "answer":
        return Response(fault.body, fault.status, headers, mimetype="application/json")
    if fault.kind == "garbage":
        return Response("<html>oops</html>", 200, mimetype="text/html")
    if fault.kind == "truncated":
        body = json.dumps([{"taskId": FIRST_TASK_ID, "status": 202}] * 4)
        return Response(body[: len(body) // 2], 200, mimetype="application/json")
    return Response(_oversize_body(), 200, mimetype="application/json")


def _trickled(response: Response, seconds: float) -> Response:
    """Return the same answer, its body sent one byte every `seconds` after prompt headers."""
    body = response.get_data()

    def drip() -> Iterable[bytes]:
        for n in range(len(body)):
            if n:
                time.sleep(seconds)
            yield body[n : n + 1]

    # The headers (Content-Length included) go out with the first byte.
    return Response(drip(), response.status_code, response.headers)


@functools.cache
def _oversize_body() -> bytes:
    """Build a valid task list past 2 MiB once, since every oversize fault sends the same."""
    items = [{"taskId": FIRST_TASK_ID + n, "status": 202} for n in range(64_000)]
    return json.dumps(items).encode()


def main(argv: list[str] | None = None) -> None:
    """Serve a simulator with the given libraries until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a local stand-in for Tencent SMH.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument(
        "--library", action="append", required=True, metavar="ID:SECRET", help="repeatable"
    )
    parser.add_argument("--token-lifetime", type=float, metavar="SECONDS")
    args = parser.parse_args(argv)
    simulator = Simulator(token_lifetime=args.token_lifetime)
    for spec in args.library:
        library_id, _, secret = spec.partition(":")
        if not library_id or not secret:
            # Never echo the argument: it holds a secret.
            parser.error("--library wants ID:SECRET with both parts non-empty")
        simulator.add_library(library_id, secret)
    server = make_server(
        args.host, args.port, simulator, threaded=True, request_handler=_QuietHandler
    )
    host = f"[{server.host}]" if ":" in server.host else server.host
    print(f"SMH simulator serving at http://{host}:{server.port} (Ctrl-C stops it)", flush=True)
    # Werkzeug's serve_forever swallows Ctrl-C and closes the socket on the way out.
    server.serve_forever()


if __name__ == "__main__":
    main()
