"""Which names the dashboard answers to: the Host allowlist (origins.py says who may change things).

A page on a hostile site whose name is rebound to the dashboard's address (DNS rebinding) sends
that name in `Host`: Flask's TRUSTED_HOSTS refuses it before sign-in, CSRF or a view runs.
"""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import SecurityError

from smh_dashboard.i18n import gettext
from smh_dashboard.web import api, errors, health


def init_app(app: Flask) -> None:
    """Answer only to the allowed host names (SMH_ALLOWED_HOSTS); /healthz answers to any."""
    # Werkzeug ignores the port on both sides: "localhost" lets localhost:5000 in.
    app.config["TRUSTED_HOSTS"] = list(app.config["SMH_ALLOWED_HOSTS"])
    app.before_request(refuse_foreign_host)


def refuse_foreign_host() -> ResponseReturnValue | None:
    """Answer a request to a name the dashboard does not answer to with 400 (or /healthz)."""
    if not isinstance(request.routing_exception, SecurityError):
        return None
    # Load balancers probe by address; the answer names nothing but the servers' health.
    if request.path == "/healthz" and request.method in ("GET", "HEAD"):
        return health.healthz()
    message = gettext(
        "This dashboard does not answer to the host name in this request. Open it at its own "
        "address, or add the name to SMH_ALLOWED_HOSTS."
    )
    if errors.wants_json():
        return api.error(400, "HostNotAllowed", message), 400
    # No URL can be built for a host the dashboard does not answer to: a page without links.
    return render_template("host_not_allowed.html", message=message), 400
