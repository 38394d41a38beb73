"""What every HTML page shares: the CSRF guard on its forms, the task id in its URLs, and the words
for task states that its templates read (each concern's blueprint is its own module)."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from smh_dashboard import badges
from smh_dashboard.domain import inputs
from smh_dashboard.web import filters, rows

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Bind the CSRF guard and the task id converter (before any page's rules), and the words."""
    csrf.init_app(app)
    app.url_map.converters["task_id"] = inputs.TaskIdConverter
    # How states are shown is the web side's vocabulary, defined once and read by templates.
    app.jinja_env.globals.update(
        badge=badges.badge,
        hint=badges.hint,
        last_seen=badges.last_seen,
        BADGES=badges.BADGES,
        FILTERS=filters.FILTERS,
    )
    rows.init_app(app)
