"""The JSON API: SMH's task query answered for configured libraries, without exposing a token."""

from __future__ import annotations

import math

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.domain import inputs, states
from smh_dashboard.live import poller
from smh_dashboard.web import auth

# Every path under API_ROOT answers errors as the API does, versions to come included.
API_ROOT = "/api/"
URL_PREFIX = API_ROOT + "v1"
bp = Blueprint("api", __name__, url_prefix=URL_PREFIX)


@bp.get("/task/<library_id>/<task_id_list>")
def tasks(library_id: str, task_id_list: str) -> ResponseReturnValue:
    """Answer SMH's task query for a configured library, without a token, through the cache."""
    library = auth.visible_library(library_id)
    if library is None:
        message = f"No media library {inputs.excerpt(library_id)} is configured."
        return error(404, "LibraryNotFound", message)
    try:
        ids = inputs.parse_task_id_list(task_id_list)
    except inputs.InputError as bad:
        return error(400, bad.code, str(bad))
    try:
        found, outage = poller.fetch_statuses(library, ids)
    except poller.RateLimited as limited:
        message = "Too many new task ids at once: SMH was just asked about others. Ask again later."
        response = error(429, "RateLimitExceeded", message)
        response.headers["Retry-After"] = str(max(1, math.ceil(limited.retry_after)))
        return response
    if outage is not None and len(found) < len(ids):
        return _outage_error(outage)
    items = [found[i].raw for i in ids if i in found and found[i].state != states.MISSING]
    return jsonify(items)


def _outage_error(outage: poller.Outage) -> Response:
    if outage.status is not None and 400 <= outage.status < 500:
        status, code = outage.status, outage.code or "UpstreamRefused"
    elif outage.is_timeout:
        status, code = 504, "GatewayTimeout"
    else:
        status, code = 502, "BadGateway"
    response = error(status, code, f"SMH failed: {outage.message}", outage.request_id)
    response.headers["Retry-After"] = str(max(1, math.ceil(outage.retry_at - clock.now())))
    return response


def error(status: int, code: str, message: str, request_id: str | None = None) -> Response:
    """Answer an error in SMH's own shape: {code, message, requestId}."""
    body = {"code": code, "message": message}
    if request_id:
        body["requestId"] = request_id
    response = jsonify(body)
    response.status_code = status
    return response
