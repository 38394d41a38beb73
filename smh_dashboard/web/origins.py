"""Which origins may change things: an allowed host name on this request's scheme and port, or
the dashboard's own public URL (SMH_DASHBOARD_URL), never simply the request's own Host."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request

DEFAULT_PORTS = {"http": 80, "https": 443}


def is_allowed_origin(origin: str) -> bool:
    """Tell whether a change may come from this origin (scheme://host[:port], as browsers send).

    Its host must be an allowed one, on the scheme and port this request came in on; or it is
    the origin of SMH_DASHBOARD_URL, where a proxy in front answers.
    """
    try:
        there = urlsplit(origin)
        port = there.port or DEFAULT_PORTS.get(there.scheme)
    except ValueError:
        return False
    if there.hostname is None or port is None:
        return False
    dashboard_url = current_app.config["SMH_DASHBOARD_URL"]
    if dashboard_url and _origin_of(dashboard_url) == (there.scheme, there.hostname, port):
        return True
    here = urlsplit(request.host_url)
    here_port = here.port or DEFAULT_PORTS.get(here.scheme)
    return there.hostname in current_app.config["SMH_ALLOWED_HOSTS"] and (there.scheme, port) == (
        here.scheme,
        here_port,
    )


def _origin_of(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme)
