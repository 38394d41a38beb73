"""The dashboard's log lines: text or JSON, a request id on each, never a credential."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TextIO

from flask import Flask, Response, g, has_request_context, request

from smh_dashboard.settings import LogFormat
from smh_dashboard.smh import redact

REQUEST_ID_HEADER = "X-Request-Id"
# An incoming id is kept only if it is short and plain, so it cannot forge or flood a log line.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# What of a request's path goes into a log line.
MAX_LOGGED_PATH = 200
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# Log lines name the part of the dashboard that wrote them, as operators' filters expect.
log = logging.getLogger("logs")


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request it was logged in ('-' outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add record.request_id; never drop the record."""
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JSONFormatter(logging.Formatter):
    """Write a record as one JSON object: time, level, logger, request id, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class StandardErrorHandler(logging.StreamHandler):
    """Write to whatever sys.stderr is when a line is logged (a test may have replaced it)."""

    @property
    def stream(self) -> TextIO:
        """Return the current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_handler = StandardErrorHandler()
_handler.addFilter(RequestIdFilter())
# The last line of defence: whatever any module logs, a token or webhook key is masked.
_handler.addFilter(redact.FILTER)


def init_app(app: Flask) -> None:
    """Send every logger's lines to standard error in LOG_FORMAT, and give requests an id."""
    formatter = JSONFormatter() if app.config["LOG_FORMAT"] is LogFormat.JSON else _text_formatter()
    _handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    # Alembic says which database kind it talks to at every start; the store warns on upgrades.
    migrations = logging.getLogger("alembic")
    if migrations.level == logging.NOTSET:
        migrations.setLevel(logging.WARNING)
    app.before_request(_take_request_id)
    app.after_request(_log_failure)


def _text_formatter() -> logging.Formatter:
    formatter = logging.Formatter(TEXT_FORMAT, "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    return formatter


def _take_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _log_failure(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    if response.status_code >= 400:
        # The path only: a query string is the caller's, and may hold what it should not.
        path = printable(request.path, MAX_LOGGED_PATH)
        log.log(
            logging.WARNING if response.status_code >= 500 else logging.INFO,
            "request failed: %s %s -> %d",
            request.method,
            path,
            response.status_code,
            extra={
                "fields": {"method": request.method, "path": path, "status": response.status_code}
            },
        )
    return response


def printable(text: str, limit: int) -> str:
    """Return text cut to `limit` characters with control characters escaped, for one log line."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
