"""The HTML pages: each concern's blueprint, the CSRF guard on their forms, and the words for
task states that their templates read."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from smh_dashboard import badges
from smh_dashboard.domain import inputs
from smh_dashboard.web import (
    activity,
    downloads,
    filters,
    health,
    history,
    libraries,
    rows,
    tasks,
)

csrf = CSRFProtect()

BLUEPRINTS = (
    libraries.bp,
    tasks.bp,
    history.bp,
    activity.bp,
    downloads.bp,
    health.bp,
)


def init_app(app: Flask) -> None:
    """Register the pages and the CSRF guard that protects their forms."""
    csrf.init_app(app)
    app.url_map.converters["task_id"] = inputs.TaskIdConverter
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # How states are shown is the web side's vocabulary, defined once and read by templates.
    app.jinja_env.globals.update(
        badge=badges.badge,
        hint=badges.hint,
        last_seen=badges.last_seen,
        BADGES=badges.BADGES,
        FILTERS=filters.FILTERS,
    )
    rows.init_app(app)
