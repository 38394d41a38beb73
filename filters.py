"""How the pages show things: status badges, times, durations and JSON."""

from __future__ import annotations

import json
import time

from flask import Flask

import smh
import store

BADGES = {
    store.PENDING: ("Waiting for SMH", "running"),
    smh.RUNNING: ("Running", "running"),
    smh.DONE: ("Done", "done"),
    smh.DONE_EMPTY: ("Done, no result", "done"),
    smh.FAILED: ("Failed", "failed"),
    smh.UNKNOWN: ("Unknown status", "unknown"),
    smh.MISSING: ("Unknown upstream", "unknown"),
}


def init_app(app: Flask) -> None:
    """Make the filters and helpers available to every template."""
    app.jinja_env.filters.update(
        ago=ago, utc=utc, iso=iso, duration=duration, pretty_json=pretty_json
    )
    app.jinja_env.globals.update(badge=badge, last_seen=last_seen)


def badge(task: store.Task) -> tuple[str, str]:
    """Return a task's badge text and colour class."""
    text, tone = BADGES.get(task.state, ("Unknown", "unknown"))
    if task.state == smh.UNKNOWN and task.smh_status is not None:
        text = f"Unknown status {task.smh_status}"
    return text, tone


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


def ago(timestamp: float | None, now: float) -> str:
    """Format a Unix time relative to now: 'just now', '4 min ago', '3 days ago'."""
    if timestamp is None:
        return "never"
    seconds = now - timestamp
    if seconds < 5:
        return "just now"
    return f"{duration(seconds, short=True)} ago"


def duration(seconds: float | None, short: bool = False) -> str:
    """Spell a duration out: '45 s', '4 min 10 s', '2 h 5 min', '3 days'."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" if short or not secs else f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" if short or not minutes else f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def last_seen(task: store.Task) -> str:
    """Name the state SMH last reported for a task it no longer lists, or ''."""
    state = smh.STATE_BY_CODE.get(task.smh_status) if task.smh_status is not None else None
    return BADGES[state][0] if state else ""
