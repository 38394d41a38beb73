"""How templates show values: times, durations, numbers and JSON (Jinja filters)."""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from gettext import NullTranslations
from typing import NamedTuple

from flask import Flask
from markupsafe import Markup, escape

from smh_dashboard import i18n
from smh_dashboard.domain import inputs, retention, states
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
    # SMH's retention limits and the one-phrase description of settings, likewise.
    app.jinja_env.globals.update(
        states=states, inputs=inputs, limits=retention, describe=retention.describe
    )


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


class Drawing(NamedTuple):
    """A drawing made with `now=LATER`, taken apart: its text in pieces with None where each
    moment goes, and each moment's filter name and Unix time, in order."""

    pieces: tuple[str | None, ...]
    moments: tuple[tuple[str, str], ...]


def split_moments(drawn: str) -> Drawing:
    """Take the moments out of a drawing made with `now=LATER`: what `fill_moments` takes."""
    parts = _MOMENT.split(drawn)
    pieces: list[str | None] = [None] * (2 * len(parts[::3]) - 1)
    pieces[::2] = parts[::3]
    return Drawing(tuple(pieces), tuple(zip(parts[1::3], parts[2::3], strict=True)))


def fill_moments(drawings: Iterable[Drawing], now: float) -> Markup:
    """Fill in drawings that `split_moments` took apart, each moment told relative to now, and
    join them a line each."""
    words = time_words()
    # Tasks tracked, checked or seen finished together share their times: each is told once.
    told: dict[tuple[str, str], str] = {}
    # And times a moment apart read the same: a moment's words depend only on its whole seconds
    # (and on whether it is under five, "just now"), so each reading is spelled once.
    spelled: dict[tuple[str, int, bool], str] = {}

    def tell(moment: tuple[str, str]) -> str:
        name, timestamp = moment
        seconds = now - float(timestamp)
        reading = (name, round(seconds), seconds < 5)
        said = spelled.get(reading)
        if said is None:
            said = spelled[reading] = escape(
                _ago(seconds, words) if name == "ago" else _duration(seconds, words)
            )
        told[moment] = said
        return said

    # Each drawing's moments go in their places (a slice assignment), and everything is joined
    # once: a page draws 50 rows of about 150 moments on every whole-section render.
    lines: list[str | None] = []
    for pieces, moments in drawings:
        row = list(pieces)
        row[1::2] = [told[moment] if moment in told else tell(moment) for moment in moments]
        lines += row
        lines.append("\n")
    return Markup("".join(lines[:-1]))  # type: ignore[arg-type]


def _mark(name: str, timestamp: float) -> Markup:
    return Markup(f"\x00{name} {timestamp!r}\x00")


@dataclass(frozen=True)
class TimeWords:
    """The words moments and durations are spelled with in one language, each still to be
    filled in: looked up once per catalog, where a page of 50 rows spells about a hundred."""

    never: str
    just_now: str
    ago: str
    seconds: str
    minutes: str
    minutes_seconds: str
    hours: str
    hours_minutes: str


_TIME_WORDS: weakref.WeakKeyDictionary[NullTranslations, TimeWords] = weakref.WeakKeyDictionary()


def time_words() -> TimeWords:
    """Return the time words of the request's language (of its catalog, which gettext reads)."""
    catalog = i18n.catalog()
    words = _TIME_WORDS.get(catalog)
    if words is None:
        # gettext without values leaves the placeholders to fill in.
        words = _TIME_WORDS[catalog] = TimeWords(
            never=gettext("never"),
            just_now=gettext("just now"),
            ago=gettext("%(duration)s ago"),
            seconds=gettext("%(seconds)d s"),
            minutes=gettext("%(minutes)d min"),
            minutes_seconds=gettext("%(minutes)d min %(seconds)d s"),
            hours=gettext("%(hours)d h"),
            hours_minutes=gettext("%(hours)d h %(minutes)d min"),
        )
    return words


def ago(timestamp: float | None, now: float | Later) -> str:
    """Format a Unix time relative to now: 'just now', '4 min ago', '3 days ago'."""
    if timestamp is None:
        return time_words().never
    if isinstance(now, Later):
        return _mark("ago", timestamp)
    return _ago(now - timestamp, time_words())


def elapsed(since: float, now: float | Later) -> str:
    """Spell out how long ago `since` was, as a duration: '4 min 10 s'."""
    if isinstance(now, Later):
        return _mark("elapsed", since)
    return _duration(now - since, time_words())


def duration(seconds: float | None, short: bool = False) -> str:
    """Spell a duration out: '45 s', '4 min 10 s', '2 h 5 min', '3 days'."""
    if seconds is None:
        return ""
    return _duration(seconds, time_words(), short)


def _ago(seconds: float, words: TimeWords) -> str:
    if seconds < 5:
        return words.just_now
    return words.ago % {"duration": _duration(seconds, words, short=True)}


def _duration(seconds: float, words: TimeWords, short: bool = False) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return words.seconds % {"seconds": seconds}
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        if short or not secs:
            return words.minutes % {"minutes": minutes}
        return words.minutes_seconds % {"minutes": minutes, "seconds": secs}
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        if short or not minutes:
            return words.hours % {"hours": hours}
        return words.hours_minutes % {"hours": hours, "minutes": minutes}
    return ngettext("%(num)d day", "%(num)d days", hours // 24)
