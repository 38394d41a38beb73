"""The JSON API: SMH's task query answered for configured libraries, without exposing a token."""

from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue

from smh_dashboard import clock
from smh_dashboard.domain import inputs, states
from smh_dashboard.live import poller
from smh_dashboard.web import auth, quotas

# Every path under API_ROOT answers errors as the API does, versions to come included.
API_ROOT = "/api/"
URL_PREFIX = API_ROOT + "v1"
bp = Blueprint("api", __name__, url_prefix=URL_PREFIX)
# On an answer from the dashboard's record while SMH fails: SMH's error code (or BadGateway,
# GatewayTimeout), and for how many whole seconds SMH has been failing. Once that is longer than
# SMH_API_MAX_STALE_SECONDS, SMH's error is the answer instead.
OUTAGE_HEADER = "X-SMH-Outage"
STALE_HEADER = "X-SMH-Stale-Seconds"


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
    # A call may wait for SMH (ids never answered for): a person holds only so many at once.
    release = quotas.take(quotas.API_WAITS)
    if release is None:
        waits = quotas.limit(quotas.API_WAITS)
        message = (
            f"Too many calls at once: you are already waiting for {waits} answer(s) from SMH "
            "through this API. Ask again once one has come."
        )
        response = error(429, "TooManyRequests", message)
        response.headers["Retry-After"] = str(quotas.RETRY_SECONDS)
        return response
    try:
        found, outage = poller.fetch_statuses(library, ids)
    except poller.RateLimited as limited:
        message = "Too many new task ids at once: SMH was just asked about others. Ask again later."
        response = error(429, "RateLimitExceeded", message)
        response.headers["Retry-After"] = str(max(1, math.ceil(limited.retry_after)))
        return response
    finally:
        release()
    if outage is not None and len(found) < len(ids):
        return _outage_error(outage)
    items = [found[i].raw for i in ids if i in found and found[i].state != states.MISSING]
    response = jsonify(items)
    # Answers about tasks still under way come from the record while SMH fails: say so, and
    # once SMH has failed for too long, say SMH's error instead.
    outage = outage or poller.current_outage(library.id)
    if outage is not None and any(found[i].state in states.POLLED for i in found):
        failing_for = clock.now() - outage.since
        if failing_for > float(current_app.config["SMH_API_MAX_STALE_SECONDS"]):
            return _outage_error(outage)
        response.headers[OUTAGE_HEADER] = _outage_status(outage)[1]
        response.headers[STALE_HEADER] = str(max(0, math.floor(failing_for)))
    return response


def _outage_status(outage: poller.Outage) -> tuple[int, str]:
    """Return the status and code the API answers for this outage: SMH's own for a refusal."""
    if outage.status is not None and 400 <= outage.status < 500:
        return outage.status, outage.code or "UpstreamRefused"
    if outage.is_timeout:
        return 504, "GatewayTimeout"
    return 502, "BadGateway"


def _outage_error(outage: poller.Outage) -> Response:
    status, code = _outage_status(outage)
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
