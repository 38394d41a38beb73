"""What people type: task ids and labels, and the limits that bound them (forms, CLI, API)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from werkzeug.routing import BaseConverter, ValidationError

from smh_dashboard.i18n import gettext
from smh_dashboard.smh import codes

# Task ids are SMH's 64-bit integers; a person may give as many at once as SMH takes in one call.
MAX_TASK_ID = codes.INT64_MAX
MAX_IDS_AT_ONCE = codes.MAX_IDS_PER_CALL
MAX_LABEL_LENGTH = 200
# A media library id, in URLs, settings and every table keyed by library.
MAX_LIBRARY_ID_LENGTH = 64
# A search matches an id or part of a label, so nothing longer than a label can match.
MAX_SEARCH_LENGTH = MAX_LABEL_LENGTH
# How much of a refused list of task ids a page shows back: a hundred of the longest ids with
# their separators fit whole, a pasted log does not.
MAX_SHOWN_TASK_IDS = 4096
# Unicode's control (Cc) and format (Cf) characters: terminal escapes, bells, line breaks, bidi
# overrides that reverse the text around them, zero-width characters. No label needs one.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf"})
# SMH's own syntax for TaskIdList in the task query's path, which the JSON API mirrors.
TASK_ID_LIST = re.compile(r"[0-9]+(,[0-9]+)*")


class InputError(ValueError):
    """Input a person or script must correct; the text says how, the code names it SMH's way."""

    def __init__(self, message: str, code: str = "ParamInvalid") -> None:
        super().__init__(message)
        self.code = code


# How much of something a person typed a message quotes back.
MAX_QUOTED = 24


def excerpt(text: str) -> str:
    """Return text short enough to quote in a message: at most MAX_QUOTED characters."""
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "…"


def parse_task_ids(text: str, separators: str = r"[\s,]+") -> list[int]:
    """Parse task ids typed by a person; raise InputError with a message they can act on."""
    tokens = [t for t in re.split(separators, text.strip()) if t]
    if not tokens:
        raise InputError(gettext("Enter at least one task id."))
    ids = []
    for token in tokens:
        valid = token.isascii() and token.isdigit() and len(token) <= 19
        if not valid or not 0 < int(token) <= MAX_TASK_ID:
            raise InputError(
                gettext(
                    "“%(token)s” is not a task id: task ids are whole numbers from 1 to %(max)d.",
                    token=excerpt(token),
                    max=MAX_TASK_ID,
                )
            )
        ids.append(int(token))
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_IDS_AT_ONCE:
        message = gettext(
            "That is %(count)d task ids; give at most %(max)d at once.",
            count=len(ids),
            max=MAX_IDS_AT_ONCE,
        )
        raise InputError(message, "TooManyItems")
    return ids


def parse_task_id_list(text: str) -> list[int]:
    """Parse a TaskIdList as SMH's task query takes it in its path: ids separated by commas."""
    if not TASK_ID_LIST.fullmatch(text):
        raise InputError(
            gettext("TaskIdList must be task ids separated by commas, such as 10 or 10,12,13.")
        )
    if len(set(text.split(","))) > MAX_IDS_AT_ONCE:
        message = gettext("Ask for at most %(max)d task ids at once.", max=MAX_IDS_AT_ONCE)
        raise InputError(message, "TooManyItems")
    return parse_task_ids(text, separators=",")


def parse_label(text: str) -> str:
    """Return a label as stored (trimmed), or raise InputError if it is too long or not plain."""
    label = text.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InputError(gettext("Keep the label under %(max)d characters.", max=MAX_LABEL_LENGTH))
    if any(_unprintable(c) for c in label):
        raise InputError(gettext("A label is plain text: no control or formatting characters."))
    return label


def _unprintable(character: str) -> bool:
    return unicodedata.category(character) in UNPRINTABLE_CATEGORIES


def printable(text: str) -> str:
    """Return text with its control and format characters written as escapes (\\x1b, \\u202e),
    for a terminal: a label stored before labels were checked may hold them."""
    return "".join(_escape(c) if _unprintable(c) else c for c in text)


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def parse_search(text: str) -> str | None:
    """Return a search as used (trimmed; None when empty), or raise InputError if too long."""
    search = text.strip()
    if len(search) > MAX_SEARCH_LENGTH:
        raise InputError(
            gettext(
                "A search is at most %(max)d characters: a task id or part of a label.",
                max=MAX_SEARCH_LENGTH,
            )
        )
    if any(ord(c) < 32 for c in search):
        raise InputError(gettext("A search is one line of text: a task id or part of a label."))
    return search or None


class TaskIdConverter(BaseConverter):
    """Match a task id in a URL path: ASCII digits only, from 1 to MAX_TASK_ID."""

    # Werkzeug's own int converter takes any Unicode digit: Arabic-Indic or full-width digits
    # in the path would show task 701.
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        """Return the task id, or refuse the URL (a 404) if it is out of range."""
        task_id = int(value)
        if not 0 < task_id <= MAX_TASK_ID:
            raise ValidationError()
        return task_id


def shown_back(form: Mapping[str, str]) -> dict[str, str]:
    """Return the task ids and label a refused form shows back, cut to what they may hold."""
    return {
        "task_ids": form.get("task_ids", "")[:MAX_SHOWN_TASK_IDS],
        "label": form.get("label", "")[:MAX_LABEL_LENGTH],
    }
