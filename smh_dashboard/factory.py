"""The application factory: configuration in layers, then the parts bound together."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from smh_dashboard import commands, formats, i18n, logs, pruning, registry, settings
from smh_dashboard.actions import guided as guided_clears
from smh_dashboard.domain import users
from smh_dashboard.domain.libraries import load_libraries
from smh_dashboard.live import coordination, poller
from smh_dashboard.notify import delivery as notify
from smh_dashboard.storage import database, listings
from smh_dashboard.web import (
    activity,
    api,
    auth,
    downloads,
    errors,
    guided,
    health,
    history,
    hosts,
    libraries,
    metrics,
    openapi,
    pages,
    quotas,
    security,
    sign_out,
    tasks,
)

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: Mapping | None = None) -> Flask:
    """Build the dashboard from defaults, then the environment, then the caller's overrides."""
    # templates/, static/, translations/ and instance/ sit beside app.py, at the checkout's top;
    # the name stays "app", which log lines carry.
    app = Flask("app", root_path=str(ROOT), instance_relative_config=True)
    # Werkzeug answers /libraries//x with a redirect to an absolute URL built from the Host
    # header, which anyone can forge; without merging, such a path is simply not found.
    app.url_map.merge_slashes = False
    app.config.from_mapping(settings.DEFAULTS)
    app.config.update(settings.from_environ())
    app.config.update(overrides or {})
    try:
        settings.check_settings(app.config)
        configured = load_libraries(app.config)
        people = users.load_users(app.config, [library.id for library in configured])
    except settings.ConfigError as error:
        raise SystemExit(f"Configuration error: {error}") from None

    app.config["SECRET_KEY"] = app.config["FLASK_SECRET_KEY"] or _instance_secret_key(app)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or (
        f"sqlite:///{os.path.join(app.instance_path, 'dashboard.sqlite3')}"
    )
    app.config.setdefault("CACHE_DEFAULT_TIMEOUT", app.config["SMH_CACHE_SECONDS"])
    # Polls of one page must not outlive its CSRF token mid-shift: tokens live as long as the tab.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    # First, so that every line a start-up or a request logs has the format and the request id,
    # and polls are timed from before sign-in.
    logs.init_app(app)
    # Next: a request to a name the dashboard does not answer to goes no further.
    hosts.init_app(app)
    metrics.init_app(
        app, lambda: listings.count_states(library.id for library in registry.all_libraries())
    )
    database.init_app(app)
    registry.init_app(app, configured)
    coordination.init_app(app)
    poller.init_app(app)
    poller.add_chore(app, guided_clears.CHORE)
    # Before the pages' CSRF guard: who is asking is settled before what they sent.
    auth.init_app(app, people)
    # After sign-in: a request refused there starts no delivery.
    notify.init_app(app)
    pruning.init_app(app)
    quotas.init_app(app)
    pages.init_app(app)
    for page in (libraries, tasks, history, guided, activity, downloads, health, sign_out):
        app.register_blueprint(page.bp)
    security.init_app(app)
    i18n.init_app(app, english_under=api.API_ROOT)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    errors.init_app(app)
    formats.init_app(app)
    commands.init_app(app, create_app)
    config = app.config
    hops = config["TRUSTED_PROXIES"]
    host_hops, prefix_hops = config["TRUSTED_PROXY_HOST_HOPS"], config["TRUSTED_PROXY_PREFIX_HOPS"]
    if hops or host_hops or prefix_hops:
        # Each header by its own count: many proxies set X-Forwarded-For but pass a client's
        # own X-Forwarded-Host and -Prefix through untouched.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=hops,
            x_proto=hops,
            x_host=host_hops,
            x_port=host_hops,
            x_prefix=prefix_hops,
        )
    return app


def _instance_secret_key(app: Flask) -> str:
    """Return a secret key kept under instance/, so sessions survive restarts and workers agree."""
    path = os.path.join(app.instance_path, "secret_key")
    try:
        with open(path) as file:
            return file.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(app.instance_path, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path) as file:
            return file.read().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(key)
    return key
