"""How templates show values: times, durations, numbers and JSON (Jinja filters)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence

from flask import Flask
from markupsafe import Markup, escape

from smh_dashboard.domain import inputs, states
from smh_dashboard.i18n import GROUP_SYMBOLS, get_locale, gettext, ngettext


def init_app(app: Flask) -> None:
    """Make the filters and helpers available to every template."""
    app.jinja_env.filters.update(
        ago=ago,
        elapsed=elapsed,
        utc=utc,
        iso=iso,
        duration=duration,
        number=number,
        pretty_json=pretty_json,
    )
    # The vocabularies and limits pages show come from their one home, never copied into markup.
    app.jinja_env.globals.update(states=states, inputs=inputs)


def number(value: int | None) -> str:
    """Format a count with the locale's thousands separators, or an em dash when there is none."""
    if value is None:
        return "—"
    # Babel's format_decimal costs ~20x more, and every row shows counts. The dashboard's
    # languages all group digits by three; only the separator could differ.
    return f"{value:,}".replace(",", GROUP_SYMBOLS[get_locale()])


def pretty_json(value: object) -> str:
    """Indent JSON for reading."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def utc(timestamp: float | None) -> str:
    """Format a Unix time as an absolute UTC time."""
    if timestamp is None:
        return ""
    # time.strftime on gmtime is about twice as fast as datetime, and every row shows times.
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def iso(timestamp: float | None) -> str:
    """Format a Unix time as ISO 8601 in UTC, for machine-readable datetime attributes."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Later:
    """The `now` of a drawing kept to be shown later (web/rows.py): a moment relative to it is
    left as a mark, which `fill_moments` fills in from each render's own now."""


LATER = Later()
# A mark: which filter, and the Unix time it was given. NUL appears in no text we render.
_MOMENT = re.compile("\x00(ago|elapsed) ([^\x00]+)\x00")


def split_moments(drawn: str) -> list[str]:
    """Split a drawing made with `now=LATER` into text, then a filter's name and its time, and
    so on, ending with text: what `fill_moments` takes."""
    return _MOMENT.split(drawn)


def fill_moments(drawings: Iterable[Sequence[str]], now: float) -> list[Markup]:
    """Join drawings that `split_moments` split, each moment in them told relative to now."""
    # Tasks tracked, checked or seen finished together share their times: each is told once.
    told: dict[tuple[str, str], str] = {}
    filled = []
    for parts in drawings:
        joined: list[str] = []
        for i in range(0, len(parts) - 1, 3):
            name, timestamp = parts[i + 1], parts[i + 2]
            moment = told.get((name, timestamp))
            if moment is None:
                spell = ago if name == "ago" else elapsed
                moment = told[name, timestamp] = escape(spell(float(timestamp), now))
            joined += (parts[i], moment)
        joined.append(parts[-1])
        filled.append(Markup("".join(joined)))
    return filled


def _mark(name: str, timestamp: float) -> Markup:
    return Markup(f"\x00{name} {timestamp!r}\x00")


def ago(timestamp: float | None, now: float | Later) -> str:
    """Format a Unix time relative to now: 'just now', '4 min ago', '3 days ago'."""
    if timestamp is None:
        return gettext("never")
    if isinstance(now, Later):
        return _mark("ago", timestamp)
    seconds = now - timestamp
    if seconds < 5:
        return gettext("just now")
    return gettext("%(duration)s ago", duration=duration(seconds, short=True))


def elapsed(since: float, now: float | Later) -> str:
    """Spell out how long ago `since` was, as a duration: '4 min 10 s'."""
    if isinstance(now, Later):
        return _mark("elapsed", since)
    return duration(now - since)


def duration(seconds: float | None, short: bool = False) -> str:
    """Spell a duration out: '45 s', '4 min 10 s', '2 h 5 min', '3 days'."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return gettext("%(seconds)d s", seconds=seconds)
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        if short or not secs:
            return gettext("%(minutes)d min", minutes=minutes)
        return gettext("%(minutes)d min %(seconds)d s", minutes=minutes, seconds=secs)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        if short or not minutes:
            return gettext("%(hours)d h", hours=hours)
        return gettext("%(hours)d h %(minutes)d min", hours=hours, minutes=minutes)
    return ngettext("%(num)d day", "%(num)d days", hours // 24)
