"""The one redaction filter: no access token, library secret or webhook key reaches a log line.

urllib3 and requests log full URLs, which carry SMH's tokens in their query or path and a chat
robot's key in a webhook's address; the dashboard's own lines may quote them in an error. One
filter guards both: the library loggers by name, and the dashboard's log handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

SECRET_PARAMS = re.compile(r"((?:access_token|library_secret)=)[^&\s'\"]*", re.IGNORECASE)
TOKEN_IN_PATH = re.compile(r"(/api/v1/token/[^/\s]+/)[^/?\s'\"]+")
# The loggers that write URLs whole. A logger's filters do not apply to its children's records,
# hence each module by name.
LIBRARY_LOGGERS = (
    *(f"urllib3.{n}" for n in ("connectionpool", "connection", "response", "poolmanager")),
    "urllib3.util.retry",
    "requests",
)


def redact(text: str) -> str:
    """Return text with every access token and library secret replaced by ***."""
    return TOKEN_IN_PATH.sub(r"\1***", SECRET_PARAMS.sub(r"\1***", text))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return text with each of these secrets replaced by an ellipsis, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


class RedactingFilter(logging.Filter):
    """Scrub SMH credentials and the secrets it was told of from records; never drop one."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def clean(self, text: str) -> str:
        """Return text without SMH credentials or any secret this filter knows."""
        return scrub(redact(text), self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and traceback without secrets; never drop it."""
        message = record.getMessage()
        clean = self.clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters use a record's exc_text when it is set.
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
        return True


FILTER = RedactingFilter()


def guard_library_logs() -> None:
    """Put the filter on the loggers of urllib3 and requests, which log full URLs."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)


def hide(secrets: Iterable[str]) -> None:
    """Have the filter hide these secrets too (webhook URLs and keys), wherever they appear."""
    FILTER.secrets.update(secrets)
    guard_library_logs()
