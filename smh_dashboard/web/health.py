"""`/healthz`: whether the dashboard and the servers it needs answer, for load balancers."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from smh_dashboard.live import coordination
from smh_dashboard.storage import database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Say whether the dashboard and the servers it needs answer (for load balancers)."""
    failed = []
    if not database.ping():
        failed.append("database")
    if not coordination.shared().ping():
        failed.append("redis")
    if failed:
        return {"status": "unavailable", "failed": failed}, 503
    return {"status": "ok"}
