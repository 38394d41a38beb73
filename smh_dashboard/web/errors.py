"""Which error shape a request gets: SMH's JSON under the API's prefix, an HTML page elsewhere."""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from smh_dashboard.i18n import gettext, lazy_gettext
from smh_dashboard.storage import database
from smh_dashboard.web import api

API_CODES = {
    401: "SignInRequired",
    403: "NoPermission",
    404: "RouteNotFound",
    405: "MethodNotAllowed",
    413: "RequestTooLarge",
    429: "TooManyRequests",
}
# Said on a page instead of Werkzeug's own English description, when a route gave none.
PAGE_MESSAGES = {
    400: lazy_gettext("The dashboard could not understand that request."),
    404: lazy_gettext("There is no such page on this dashboard: check the address."),
    405: lazy_gettext("This address does not take that kind of request."),
}
# Messages may quote what was sent (a library id, a filter): never more than a short excerpt.
MAX_MESSAGE_LENGTH = 300
DATABASE_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
# Time enough for SQLite's busy timeout to let a queue of writers through.
BUSY_RETRY_SECONDS = 5


def init_app(app: Flask) -> None:
    """Answer every error, from a route or from routing itself, through the one rule below."""
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(RequestEntityTooLarge, request_too_large)
    app.register_error_handler(HTTPException, http_error)
    for outage in database.OUTAGE_ERRORS:
        app.register_error_handler(outage, database_busy)
    app.register_error_handler(Exception, server_error)


def wants_json() -> bool:
    """Tell whether this request is an API call (even to a route that does not exist)."""
    return request.path.startswith(api.API_ROOT)


def form_expired(error: CSRFError) -> ResponseReturnValue:
    """Explain a rejected form instead of a bare 400."""
    message = gettext(
        "This form has expired or did not come from this dashboard. Reload the page and try again."
    )
    return render_template("error.html", status=400, message=message), 400


def http_error(error: HTTPException) -> ResponseReturnValue:
    """Show 4xx errors as a page, or in SMH's error shape on the API."""
    status = error.code or 400
    message = error.description or error.name
    if not wants_json() and error.description == type(error).description:
        message = str(PAGE_MESSAGES.get(status, message))
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    # Keep the headers the error brings (WWW-Authenticate, Retry-After, Allow), not its type.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if wants_json():
        code = API_CODES.get(status, "ParamInvalid")
        return api.error(status, code, message), status, headers
    return render_template("error.html", status=status, message=message), status, headers


def request_too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    """Refuse an oversized request in a sentence, without having read it."""
    message = gettext("That form is too large for the dashboard to read. Send less at once.")
    return http_error(RequestEntityTooLarge(message))


def database_busy(error: Exception) -> ResponseReturnValue:
    """Ask the reader to come back when the database is locked or out of reach, not fail."""
    # The first line names the trouble ("database is locked"); the rest is the SQL and its values.
    current_app.logger.warning(
        "database busy on %s %s: %s", request.method, request.path, str(error).splitlines()[0]
    )
    name = DATABASE_NAMES.get(database.database_kind(), "database")
    message = gettext(
        "The database (%(name)s) is busy or out of reach; try again in a few seconds.", name=name
    )
    headers = {"Retry-After": str(BUSY_RETRY_SECONDS)}
    if wants_json():
        response = api.error(503, "ServiceUnavailable", message)
        response.headers.update(headers)
        return response
    return render_template("error.html", status=503, message=message), 503, headers


def server_error(error: Exception) -> ResponseReturnValue:
    """Log an unexpected failure and answer plainly, leaking nothing."""
    if isinstance(error, HTTPException):
        return http_error(error)
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    message = gettext("Something went wrong on the dashboard. The error was logged.")
    if wants_json():
        return api.error(500, "InternalServerError", message)
    return render_template("error.html", status=500, message=message), 500
