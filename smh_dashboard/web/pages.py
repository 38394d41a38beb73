"""What every HTML page shares: the CSRF guard on its forms, the task id in its URLs, and the words
for task states that its templates read (each concern's blueprint is its own module)."""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, url_for
from flask.globals import _cv_request
from flask_wtf.csrf import CSRFProtect
from jinja2 import Environment

from smh_dashboard import badges
from smh_dashboard.domain import guided, inputs
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
        # A guided clear's steps and endings, as its section compares them.
        Step=guided.Step,
        Ending=guided.Ending,
        url_for=page_url,
        m=Macros(app.jinja_env),
    )
    app.extensions[LINKS] = functools.lru_cache(maxsize=LINKS_KEPT)(_build)
    rows.init_app(app)


class Macros:
    """The macros of _macros.html, which every template reads as `m` (`m.time(...)`).

    Jinja's `{% import %}` compares the importing context's globals with the module's on every
    render before it hands back the module it keeps; a page imported it six times. This is the
    module Jinja keeps, found through the environment each time, so a template edited while
    developing is read again as with an import.
    """

    def __init__(self, environment: Environment) -> None:
        self._environment = environment

    def __getattr__(self, name: str) -> Any:
        return getattr(self._environment.get_template(MACROS).module, name)


MACROS = "_macros.html"


def page_url(endpoint: str, **values: Any) -> str:
    """Build a link as url_for does, each distinct link once per root the dashboard is served
    under: a page draws about twenty, the same for every reader."""
    context = _cv_request.get(None)
    if context is None or endpoint.startswith(".") or not _PLAIN.isdisjoint(values):
        # No request; relative to the request's blueprint; external, anchored or schemed.
        return url_for(endpoint, **values)
    # The values' types too: 1 and True are equal keys but make different links.
    key = (endpoint, tuple(values.items()), tuple(map(type, values.values())))
    try:
        link: str = context.app.extensions[LINKS](context.request.script_root, key)
    except TypeError:  # a value that cannot be a key (a list of states, say)
        return url_for(endpoint, **values)
    return link


# url_for's own arguments that make a link depend on more than its root.
_PLAIN = frozenset({"_external", "_anchor", "_method", "_scheme"})


def _build(root: str, key: tuple[str, tuple[tuple[str, Any], ...], tuple[type, ...]]) -> str:
    # Only paths are built here (never _external), so the root is all a link depends on.
    endpoint, values, _ = key
    return url_for(endpoint, **dict(values))


# The app's links built so far (each app its own: its rules are its own).
LINKS = "page_links"
LINKS_KEPT = 1024
